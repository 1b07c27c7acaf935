#include "api/profile.h"

#include <algorithm>
#include <map>

#include "api/quantize_job.h"
#include "api/rt_data.h"
#include "core/atomic_file.h"
#include "kernels/peak.h"
#include "mixq/error.h"
#include "pack/from_qmodel.h"

namespace mixq {

nlohmann::json profile_packed(const PackedProfileOptions& o, const rt::ModelOptions& mo) {
  MIXQ_CHECK(o.batch >= 1 && o.runs >= 1, ErrorKind::kInvalidArgument, "--batch and --runs must be >= 1");
  rt::Model m = rt::Model::load(o.model, mo);
  auto ds = open_dataset_for(m.packed(), o.data);
  MIXQ_CHECK(ds->size() >= 1, ErrorKind::kInvalidData, o.data, ": no samples");
  const int64_t n = std::min<int64_t>(o.batch, ds->size());
  const auto x = to_runtime(ds->get(0, n));
  m.run(x);  // warm-up: primitives made, buffers pooled
  m.set_profile(true);
  for (int i = 0; i < o.runs; ++i) m.run(x);
  m.set_profile(false);
  const auto prof = m.op_profile();
  // The peak of the threads the model runs on (each measured on one thread, times their count).
  const kernels::Peak pk = kernels::measured_peak(m.isa());
  const double threads = mo.threads;
  double total = 0;
  for (const auto& p : prof) total += p.seconds;
  nlohmann::json nodes = nlohmann::json::array();
  std::map<std::string, std::pair<double, int64_t>> by_kind;  // seconds, macs
  for (const auto& p : prof) {
    if (p.skipped) continue;
    const double s = p.seconds / o.runs;
    nlohmann::json r = {{"node", p.node}, {"op", p.op}, {"ms", 1e3 * s},
                        {"share", total > 0 ? p.seconds / total : 0.0}, {"macs", p.macs}};
    std::string kind = p.op;
    if (p.macs > 0) {
      const double peak = threads * (p.integer ? pk.int8_macs : pk.fp32_macs);
      r["path"] = p.integer ? "int8" : "fp32";
      r["gops"] = s > 0 ? 2e-9 * double(p.macs) / s : 0.0;
      if (peak > 0 && s > 0) r["peak_share"] = double(p.macs) / s / peak;
      kind += p.integer ? " (int8)" : " (fp32)";
    }
    by_kind[kind].first += s;
    by_kind[kind].second += p.macs;
    nodes.push_back(r);
  }
  nlohmann::json kinds = nlohmann::json::array();
  for (const auto& [k, v] : by_kind)
    kinds.push_back({{"kind", k}, {"ms", 1e3 * v.first}, {"macs", v.second},
                     {"gops", v.first > 0 ? 2e-9 * double(v.second) / v.first : 0.0}});
  std::sort(kinds.begin(), kinds.end(), [](const auto& a, const auto& b) { return a["ms"] > b["ms"]; });
  nlohmann::json j = {{"model", o.model}, {"isa", kernels::isa_name(m.isa())}, {"threads", mo.threads},
                      {"batch", n}, {"runs", o.runs}, {"ms_in_nodes", 1e3 * total / o.runs},
                      {"peak_gops", {{"int8", 2e-9 * threads * pk.int8_macs}, {"fp32", 2e-9 * threads * pk.fp32_macs}}},
                      {"nodes", nodes}, {"by_kind", kinds}};
  return j;
}

nlohmann::json latency_table(const LatencyTableOptions& o, const rt::ModelOptions& mo) {
  MIXQ_CHECK(o.runs >= 1 && o.rounds >= 1, ErrorKind::kInvalidArgument, "--runs and --rounds must be >= 1");
  const std::vector<int>& bits = o.bits;
  MIXQ_CHECK(!bits.empty(), ErrorKind::kInvalidArgument, "--bits: give at least one bit-width");
  for (int b : bits) MIXQ_CHECK(b >= 2 && b <= 8, ErrorKind::kInvalidArgument, "--bits: ", b, " is not a bit-width in 2-8");
  std::vector<int> configs = {32};
  configs.insert(configs.end(), bits.begin(), bits.end());
  std::vector<std::string> layer_names, layer_ops;
  std::map<std::string, std::map<int, double>> ms;  // layer -> bits -> ms
  std::map<std::string, std::map<int, bool>> integer;
  std::map<int, double> total;
  std::vector<rt::Tensor> x;
  for (int b : configs) {
    QuantizeJob job;
    job.model_path = o.model;
    job.calib = o.calib;
    job.eval_float = false;
    job.defaults.pin_bits = 0;
    job.defaults.abits = o.abits;
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
    if (x.empty()) {  // one sample of the calibration set (any model); every config has the same inputs
      auto ds = open_dataset_for(m.packed(), o.calib);
      MIXQ_CHECK(ds->size() >= 1, ErrorKind::kInvalidData, o.calib, ": no samples");
      x = to_runtime(ds->get(0, 1));
    }
    m.run(x);  // warm-up
    std::map<std::string, std::vector<double>> samples;
    std::vector<double> totals;
    for (int round = 0; round < o.rounds; ++round) {
      m.set_profile(true);
      std::map<std::string, double> before;
      for (const auto& [n, s] : m.profile()) before[n] += s;
      for (int i = 0; i < o.runs; ++i) m.run(x);
      m.set_profile(false);
      std::map<std::string, double> now;
      double sum = 0;
      for (const auto& [n, s] : m.profile()) now[n] += s;
      for (const auto& [n, s] : now) {
        samples[n].push_back(1e3 * (s - before[n]) / o.runs);
        sum += (s - before[n]);
      }
      totals.push_back(1e3 * sum / o.runs);
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
  nlohmann::json j = {{"mixq_latency_version", 1}, {"model", o.model}, {"isa", kernels::isa_name(mo.isa)}, {"threads", mo.threads},
                      {"batch", 1}, {"runs", o.runs}, {"rounds", o.rounds}, {"abits", o.abits},
                      {"bits", configs}, {"layers", layers}, {"total_ms", tot}};
  return j;
}

void save_profile(const std::string& out, const std::string& model, const nlohmann::json& j) {
  MIXQ_CHECK(!same_file(out, model), ErrorKind::kInvalidArgument, "refusing to overwrite the input model '", model, "'");
  write_file_atomic(out, j.dump(2) + "\n");
}

}  // namespace mixq
