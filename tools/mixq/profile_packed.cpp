#include "profile_packed.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "common.h"
#include "core/atomic_file.h"
#include "kernels/peak.h"
#include "mixq/error.h"
#include "rt_data.h"

namespace mixq::cli {

int profile_packed(const PackedProfileOptions& o, const rt::ModelOptions& mo) {
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
  if (!o.out.empty()) write_file_atomic(o.out, j.dump(2) + "\n");
  if (o.json) {
    print_json(j);
    return 0;
  }
  std::printf("%s: batch %lld, %s, %d thread(s); measured peak %.0f int8 / %.0f fp32 GOP/s (2 ops per MAC)\n",
              o.model.c_str(), static_cast<long long>(n), kernels::isa_name(m.isa()), mo.threads,
              2e-9 * threads * pk.int8_macs, 2e-9 * threads * pk.fp32_macs);
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
  std::printf("whole model (all nodes): %.4f ms per run\n", 1e3 * total / o.runs);
  return 0;
}

}  // namespace mixq::cli
