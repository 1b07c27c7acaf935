// mixq profile MODEL.mxq: per-node time, GOP/s and % of the measured peak of a packed model
// (api/profile.h).
// mixq profile MODEL.onnx: batch-1 latency of every quantizable layer on the packed runtime at each
// weight bit-width (uniform plans, nothing pinned, --abits activations) and in float, measured on
// this machine: the per-layer latency table a latency-budgeted allocator reads.
//
// Output (-o, JSON): {model, isa, threads, runs, abits, bits: [..], layers: [{name, op, ms: {"32":
// ms, "8": ms, ...}, integer: {"8": true, ...}}], total_ms: {"32": ms, ...}}. "32" is the float
// model on the runtime. Each entry is the median over --rounds of the mean of --runs runs.
#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

#include "api/profile.h"
#include "api/rt_data.h"
#include "common.h"
#include "core/atomic_file.h"
#include "mixq/error.h"

namespace mixq::cli {

namespace {

// The per-node table of a packed model's profile (api/profile.h).
void print_packed_profile(const nlohmann::json& j) {
  const auto& nodes = j["nodes"];
  const auto& kinds = j["by_kind"];
  std::printf("%s: batch %lld, %s, %d thread(s); measured peak %.0f int8 / %.0f fp32 GOP/s (2 ops per MAC)\n",
              j["model"].get<std::string>().c_str(), static_cast<long long>(j["batch"].get<int64_t>()),
              j["isa"].get<std::string>().c_str(), j["threads"].get<int>(), j["peak_gops"]["int8"].get<double>(),
              j["peak_gops"]["fp32"].get<double>());
  std::printf("%-46s %-18s %9s %6s %10s %8s %7s\n", "node", "op", "ms", "share", "MMACs", "GOP/s", "% peak");
  for (const auto& r : nodes) {
    std::printf("%-46s %-18s %9.4f %5.1f%%", r["node"].get<std::string>().substr(0, 46).c_str(),
                r["op"].get<std::string>().substr(0, 18).c_str(), r["ms"].get<double>(), 100 * r["share"].get<double>());
    if (r.contains("gops"))
      std::printf(" %10.2f %8.1f %6.1f%% %s", 1e-6 * r["macs"].get<double>(), r["gops"].get<double>(),
                  r.contains("peak_share") ? 100 * r["peak_share"].get<double>() : 0.0, r["path"].get<std::string>().c_str());
    std::printf("\n");
  }
  std::printf("by kind:\n");
  for (const auto& k : kinds)
    std::printf("  %-28s %9.4f ms %10.2f MMACs %8.1f GOP/s\n", k["kind"].get<std::string>().c_str(),
                k["ms"].get<double>(), 1e-6 * k["macs"].get<double>(), k["gops"].get<double>());
  std::printf("whole model (all nodes): %.4f ms per run\n", j["ms_in_nodes"].get<double>());
}

void print_latency_table(const nlohmann::json& j) {
  std::vector<int> configs = j["bits"].get<std::vector<int>>();
  std::printf("%-48s %-6s", "layer (batch-1 ms)", "op");
  for (int b : configs) std::printf(" %8s", b == 32 ? "fp32" : ("w" + std::to_string(b)).c_str());
  std::printf("\n");
  for (const auto& l : j["layers"]) {
    std::printf("%-48s %-6s", l["name"].get<std::string>().substr(0, 48).c_str(), l["op"].get<std::string>().c_str());
    for (int b : configs) std::printf(" %8.4f", l["ms"][std::to_string(b)].get<double>());
    std::printf("\n");
  }
  std::printf("%-48s %-6s", "whole model (all nodes)", "");
  for (int b : configs) std::printf(" %8.4f", j["total_ms"][std::to_string(b)].get<double>());
  std::printf("\n");
}

}  // namespace

RunFn setup_profile(CLI::App& sub) {
  struct Opts {
    GlobalOptions g;
    std::string model, out, calib = "fmnist:train:64", bits = "2,3,4,5,6,8", isa = "auto";
    int abits = 8, runs = 100, rounds = 3, batch = 1;
    std::string data = "fmnist:test:64";
  };
  auto o = std::make_shared<Opts>();
  sub.add_option("model", o->model,
                 "Float ONNX model (a latency table per bit-width), or a packed .mxq model (where its time goes: "
                 "per-node ms, GOP/s and % of this core's measured peak)")
      ->required();
  sub.add_option("-d,--data", o->data, ".mxq: inputs to run (as for run)")->capture_default_str();
  sub.add_option("--batch", o->batch, ".mxq: batch size")->capture_default_str();
  sub.add_option("--bits", o->bits, "Weight bit-widths to measure (comma-separated)")->capture_default_str();
  sub.add_option("--abits", o->abits, "Activation bits")->capture_default_str();
  sub.add_option("--calib", o->calib, "Calibration data for the activation ranges")->capture_default_str();
  sub.add_option("--runs", o->runs, "Batch-1 runs per measurement")->capture_default_str();
  sub.add_option("--rounds", o->rounds, "Measurements per entry (median)")->capture_default_str();
  sub.add_option("--isa", o->isa, "Kernel path: auto, ref, avx2, avx512")->capture_default_str();
  sub.add_option("-o,--output", o->out, "Write the latency table (JSON) here");
  add_global_options(sub, o->g);
  return [o]() {
    apply_global_options(o->g);
    MIXQ_CHECK(o->out.empty() || !same_file(o->out, o->model), ErrorKind::kInvalidArgument,
               "refusing to overwrite the input model '", o->model, "'");
    const rt::ModelOptions mo = runtime_options(o->isa, o->g.threads);
    nlohmann::json j;
    const bool packed = o->model.size() > 4 && o->model.compare(o->model.size() - 4, 4, ".mxq") == 0;
    if (packed) {
      j = profile_packed(PackedProfileOptions{o->model, o->data, o->batch, o->runs}, mo);
    } else {
      LatencyTableOptions lo;
      lo.model = o->model;
      lo.calib = o->calib;
      lo.abits = o->abits;
      lo.runs = o->runs;
      lo.rounds = o->rounds;
      lo.bits.clear();
      std::stringstream ss(o->bits);
      for (std::string t; std::getline(ss, t, ',');) {
        try {
          size_t used = 0;
          lo.bits.push_back(std::stoi(t, &used));
          MIXQ_CHECK(used == t.size(), ErrorKind::kInvalidArgument, "");
        } catch (...) {
          throw Error(ErrorKind::kInvalidArgument, "--bits: '" + t + "' is not a bit-width in 2-8");
        }
      }
      j = latency_table(lo, mo);
    }
    if (!o->out.empty()) save_profile(o->out, o->model, j);
    if (o->g.json) {
      print_json(j);
      return 0;
    }
    if (packed) print_packed_profile(j);
    else print_latency_table(j);
    if (!o->out.empty()) std::printf("wrote %s\n", o->out.c_str());
    return 0;
  };
}

}  // namespace mixq::cli
