#include "api/front.h"

#include <algorithm>

#include "search/solvers.h"

namespace mixq {

nlohmann::json front_point(const Problem& p, const Choice& c, QuantPlan plan, const SensitivityTable& t,
                           const std::string& source) {
  apply_choice(p, c, plan);
  // Predictions for every signal from the same choice (the table holds them all).
  auto predict = [&](const std::string& sig) { return predicted_signal(t, plan, sig); };
  nlohmann::json bits = nlohmann::json::object(), abits = nlohmann::json::object();
  for (const auto& L : plan.layers) {
    bits[L.name] = L.weight_scheme.bits;
    if (L.weight_scheme.granularity == Granularity::kPerGroup)
      bits[L.name] = std::to_string(L.weight_scheme.bits) + "/g" + std::to_string(L.weight_scheme.group_size);
    if (L.quantize_input) abits[L.name] = L.input_scheme.bits;
  }
  return {{"source", source},
          {"avg_wbits", plan.cost.avg_wbits},
          {"size_bytes", plan.cost.size_bytes},
          {"bops", plan.cost.bops},
          {"predicted_dl", predict("dl")},
          {"predicted_kl", predict("kl")},
          // A sum of single-layer drops can pass the whole score (unlabelled agreement near 100 with
          // many low-bit layers): a top-1 stays a percentage.
          {"predicted_top1", std::clamp(t.ref_top1 - predict("dacc"), 0.0, 100.0)},
          {"bits", bits},
          {"abits", abits}};
}

nlohmann::json pareto_front(const QuantPlan& plan, const SensitivityTable& t, const std::string& signal,
                            const std::vector<std::vector<int>>& groups, const HwSpec* hw, double grid_step) {
  Problem free = build_problem(plan, &t, signal, Budget{}, groups, hw, nullptr);
  nlohmann::json points = nlohmann::json::array();
  for (const Choice& c : pareto_curve(free)) points.push_back(front_point(free, c, plan, t, "greedy"));
  for (double b = 8; b >= 2 - 1e-9; b -= grid_step) {
    Budget bud;
    bud.avg_wbits = b;
    Problem p = build_problem(plan, &t, signal, bud, groups, hw, nullptr);
    if (auto c = solve_ip(p)) points.push_back(front_point(p, *c, plan, t, "ip@" + std::to_string(b).substr(0, 4)));
  }
  // BOPs front: with activation candidates a BOPs budget trades weight against activation bits.
  if (!t.acts.empty()) {
    const double top = plan.cost.bops;  // the reference plan: unpinned weights at 8 bits
    for (double f = 1.0; f >= 0.15 - 1e-9; f -= 0.05) {
      Budget bud;
      bud.bops = top * f;
      Problem p = build_problem(plan, &t, signal, bud, groups, hw, nullptr);
      if (auto c = solve_ip(p)) points.push_back(front_point(p, *c, plan, t, "ip-bops@" + std::to_string(f).substr(0, 4)));
    }
  }
  return points;
}

}  // namespace mixq
