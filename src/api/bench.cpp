#include "api/bench.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <map>

#include "api/rt_data.h"
#include "exec/executor.h"
#include "exec/fold_constants.h"

namespace mixq {

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Median wall time and median process CPU time (all threads) of `runs` calls. On a shared,
// oversubscribed machine the wall time of a long call includes time spent descheduled; the CPU
// time of a single-threaded run does not, so both are reported.
struct Timing {
  double wall = 0, cpu = 0;
};

template <typename F>
Timing time_median(F f, int runs) {
  f();  // warm-up
  std::vector<double> t, c;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_seconds();
    f();
    c.push_back(cpu_seconds() - c0);
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return {median(t), median(c)};
}

}  // namespace

nlohmann::json bench_packed(const BenchOptions& o, const rt::ModelOptions& mo) {
  rt::Model m = rt::Model::load(o.model, mo);
  auto ds = open_dataset_for(m.packed(), o.data);
  const int64_t nb = std::min<int64_t>(64, ds->size());
  Batch b64 = ds->get(0, nb), b1 = ds->get(0, 1);
  const auto x64 = to_runtime(b64), x1 = to_runtime(b1);
  const Timing r1 = time_median([&] { m.run(x1); }, o.runs);
  const Timing r64 = time_median([&] { m.run(x64); }, o.runs64);
  const double rt1 = r1.wall, rt64 = r64.wall;
  nlohmann::json profile;
  if (o.node_profile) {  // where batch-1 time goes, per node
    m.set_profile(true);
    for (int i = 0; i < o.runs; ++i) m.run(x1);
    m.set_profile(false);
    auto prof = m.profile();
    nlohmann::json nodes = nlohmann::json::array();
    std::vector<std::pair<std::string, double>> sorted = prof;
    std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    for (const auto& [n, s] : sorted) nodes.push_back({{"node", n}, {"ms", 1e3 * s / o.runs}});
    // The same time by op kind (convolutions split by shape: where issue 18's work goes).
    const pack::PackedModel& pm = m.packed();
    std::map<std::string, std::vector<int64_t>> dims;
    for (const auto& w : pm.weights) dims[w.tensor] = w.dims;
    for (const auto& t : pm.tensors) dims[t.name] = t.dims;
    std::map<std::string, std::pair<double, int>> by_kind;
    double total = 0;
    for (size_t i = 0; i < prof.size(); ++i) {
      const pack::Node& n = pm.nodes[i];
      std::string kind = n.op;
      if (n.op == "Conv" && n.inputs.size() > 1 && dims.count(n.inputs[1]) && dims[n.inputs[1]].size() == 4) {
        const auto& d = dims[n.inputs[1]];
        const pack::Attr* g = n.attr("group");
        kind = (g && g->i > 1 && d[1] == 1) ? "Conv depthwise" : (d[2] * d[3] == 1 ? "Conv 1x1" : "Conv kxk");
      }
      by_kind[kind].first += prof[i].second;
      by_kind[kind].second += 1;
      total += prof[i].second;
    }
    nlohmann::json kinds = nlohmann::json::array();
    for (const auto& [k, v] : by_kind)
      kinds.push_back({{"kind", k}, {"nodes", v.second}, {"ms", 1e3 * v.first / o.runs},
                       {"share", total > 0 ? v.first / total : 0.0}});
    std::sort(kinds.begin(), kinds.end(), [](const auto& a, const auto& b) { return a["ms"] > b["ms"]; });
    profile = {{"nodes", nodes}, {"by_kind", kinds}, {"ms_in_nodes", 1e3 * total / o.runs}};
  }
  nlohmann::json j = {{"model", o.model}, {"isa", kernels::isa_name(m.isa())}, {"threads", mo.threads},
                      {"batch1_ms", rt1 * 1e3}, {"batch64_images_per_second", double(nb) / rt64},
                      {"batch64_ms", rt64 * 1e3}, {"batch", nb}, {"batch1_cpu_ms", r1.cpu * 1e3},
                      {"batch64_cpu_ms", r64.cpu * 1e3},
                      {"forms", {{"fused_activations", m.forms().fused_acts},
                                 {"fused_adds", m.forms().fused_adds},
                                 {"codes_outputs", m.forms().codes_outputs},
                                 {"nhwc_outputs", m.forms().nhwc_outputs},
                                 {"codes_and_nhwc_outputs", m.forms().dual_outputs},
                                 {"layernorms", m.forms().layernorms},
                                 {"gelus", m.forms().gelus},
                                 {"attentions", m.forms().attentions},
                                 {"bias_adds", m.forms().biases},
                                 {"embedding_bags", m.forms().embedding_bags}}}};
  if (!o.onnx.empty()) {
    at::set_num_threads(mo.threads);
    Executor ex(load_model(o.onnx));
    at::InferenceMode guard;
    const Timing e1 = time_median([&] { ex.run(b1.inputs); }, o.runs);
    const Timing e64 = time_median([&] { ex.run(b64.inputs); }, o.runs64);
    const double t1 = e1.wall, t64 = e64.wall;
    j["executor"] = {{"model", o.onnx}, {"batch1_ms", t1 * 1e3}, {"batch64_images_per_second", double(nb) / t64},
                     {"batch1_cpu_ms", e1.cpu * 1e3}, {"batch64_cpu_ms", e64.cpu * 1e3}};
    j["batch1_cpu_speedup"] = e1.cpu / r1.cpu;
    j["batch64_cpu_speedup"] = e64.cpu / r64.cpu;
    j["batch1_speedup"] = t1 / rt1;
    j["batch64_speedup"] = t64 / rt64;
  }
  if (!profile.is_null()) j.update(profile);
  return j;
}

}  // namespace mixq
