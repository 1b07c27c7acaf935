// mixq profile MODEL.mxq: per-node time, GOP/s and % of the measured peak of a packed model
// (profile_packed.h).
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

#include "api/quantize_job.h"
#include "common.h"
#include "core/atomic_file.h"
#include "mixq/error.h"
#include "pack/from_qmodel.h"
#include "profile_packed.h"
#include "rt_data.h"

namespace mixq::cli {

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
    if (o->model.size() > 4 && o->model.compare(o->model.size() - 4, 4, ".mxq") == 0) {
      PackedProfileOptions po{o->model, o->data, o->out, o->batch, o->runs, o->g.json};
      return profile_packed(po, runtime_options(o->isa, o->g.threads));
    }
    std::vector<int> bits;
    std::stringstream ss(o->bits);
    for (std::string t; std::getline(ss, t, ',');) {
      int b = 0;
      try {
        b = std::stoi(t);
      } catch (...) {
        b = -1;
      }
      MIXQ_CHECK(b >= 2 && b <= 8, ErrorKind::kInvalidArgument, "--bits: '", t, "' is not a bit-width in 2-8");
      bits.push_back(b);
    }
    const rt::ModelOptions mo = runtime_options(o->isa, o->g.threads);
    std::vector<int> configs = {32};
    configs.insert(configs.end(), bits.begin(), bits.end());
    std::vector<std::string> layer_names, layer_ops;
    std::map<std::string, std::map<int, double>> ms;  // layer -> bits -> ms
    std::map<std::string, std::map<int, bool>> integer;
    std::map<int, double> total;
    for (int b : configs) {
      QuantizeJob job;
      job.model_path = o->model;
      job.calib = o->calib;
      job.eval_float = false;
      job.defaults.pin_bits = 0;
      job.defaults.abits = o->abits;
      job.search_opts.wbits = job.defaults.wbits = b == 32 ? 8 : b;
      job.qopts.progress = false;
      QuantizeResult r = run_quantize(job);
      if (layer_names.empty())
        for (const auto& L : r.plan.layers) {
          layer_names.push_back(L.name);
          layer_ops.push_back(L.op);
        }
      if (b == 32) {
        r.qmodel.graph = r.prepared;
        r.qmodel.weights.clear();
        r.qmodel.activations.clear();
      }
      rt::Model m(pack_quantized_model(r.qmodel), mo);
      for (const auto& p : m.layer_paths()) integer[p.node][b] = p.int_path;
      auto ds = open_dataset_for(m.packed(), "fmnist:test:1");
      const auto x = to_runtime(ds->get(0, 1));
      m.run(x);  // warm-up
      std::map<std::string, std::vector<double>> samples;
      std::vector<double> totals;
      for (int round = 0; round < o->rounds; ++round) {
        m.set_profile(true);
        std::map<std::string, double> before;
        for (const auto& [n, s] : m.profile()) before[n] += s;
        for (int i = 0; i < o->runs; ++i) m.run(x);
        m.set_profile(false);
        std::map<std::string, double> now;
        double sum = 0;
        for (const auto& [n, s] : m.profile()) now[n] += s;
        for (const auto& [n, s] : now) {
          samples[n].push_back(1e3 * (s - before[n]) / o->runs);
          sum += (s - before[n]);
        }
        totals.push_back(1e3 * sum / o->runs);
      }
      auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v.empty() ? 0.0 : v[v.size() / 2];
      };
      for (const auto& n : layer_names) ms[n][b] = median(samples[n]);
      total[b] = median(totals);
    }
    nlohmann::json layers = nlohmann::json::array();
    for (size_t i = 0; i < layer_names.size(); ++i) {
      nlohmann::json t = nlohmann::json::object(), in = nlohmann::json::object();
      for (int b : configs) {
        t[std::to_string(b)] = ms[layer_names[i]][b];
        in[std::to_string(b)] = integer[layer_names[i]][b];
      }
      layers.push_back({{"name", layer_names[i]}, {"op", layer_ops[i]}, {"ms", t}, {"integer", in}});
    }
    nlohmann::json tot = nlohmann::json::object();
    for (int b : configs) tot[std::to_string(b)] = total[b];
    // Also a latency table for `quantize --budget-latency-ms T --latency-table FILE`.
    nlohmann::json j = {{"mixq_latency_version", 1}, {"model", o->model}, {"isa", kernels::isa_name(mo.isa)}, {"threads", mo.threads},
                        {"batch", 1}, {"runs", o->runs}, {"rounds", o->rounds}, {"abits", o->abits},
                        {"bits", configs}, {"layers", layers}, {"total_ms", tot}};
    if (!o->out.empty()) write_file_atomic(o->out, j.dump(2) + "\n");
    if (o->g.json) {
      print_json(j);
      return 0;
    }
    std::printf("%-48s %-6s", "layer (batch-1 ms)", "op");
    for (int b : configs) std::printf(" %8s", b == 32 ? "fp32" : ("w" + std::to_string(b)).c_str());
    std::printf("\n");
    for (size_t i = 0; i < layer_names.size(); ++i) {
      std::printf("%-48s %-6s", layer_names[i].substr(0, 48).c_str(), layer_ops[i].c_str());
      for (int b : configs) std::printf(" %8.4f", ms[layer_names[i]][b]);
      std::printf("\n");
    }
    std::printf("%-48s %-6s", "whole model (all nodes)", "");
    for (int b : configs) std::printf(" %8.4f", total[b]);
    std::printf("\n");
    if (!o->out.empty()) std::printf("wrote %s\n", o->out.c_str());
    return 0;
  };
}

}  // namespace mixq::cli
