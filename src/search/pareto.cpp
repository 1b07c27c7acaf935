// Greedy Pareto allocator: from every layer at its highest allowed bits, repeatedly lower the one
// layer (shared group) whose next lower bit-width adds the least predicted sensitivity per bit of
// cost saved, keeping every point: the whole accuracy/cost curve from one sensitivity table. A
// budget is met by binary search on the curve (its cost is monotone along it) for the first
// feasible point; the few feasible points around it are then re-measured on the calibration data
// (real quantization, not the additive prediction) and the best measured one is kept.
#include <algorithm>
#include <cmath>

#include "core/log.h"
#include "search/allocator.h"
#include "search/context.h"
#include "search/solvers.h"

namespace mixq {

namespace {

// The cost the greedy trades against: the first constraint that is not the loss itself (so the
// curve walks toward the budget the user gave), else stored bits.
std::vector<std::vector<double>> step_cost(const Problem& p) {
  for (const auto& k : p.constraints)
    if (k.name != "max_drop") return k.coef;
  std::vector<std::vector<double>> c;
  for (const auto& u : p.units) c.push_back(u.size_bits);
  return c;
}

}  // namespace

std::vector<Choice> pareto_curve(const Problem& p) {
  const auto cost = step_cost(p);
  Choice c = highest_choice(p);
  std::vector<Choice> curve = {c};
  for (;;) {
    int best = -1;
    double best_ratio = 0;
    for (size_t u = 0; u < p.units.size(); ++u) {
      if (c[u] == 0) continue;
      double dloss = p.units[u].loss[c[u] - 1] - p.units[u].loss[c[u]];
      double dcost = cost[u][c[u]] - cost[u][c[u] - 1];
      double ratio = dloss / std::max(dcost, 1e-30);
      if (best < 0 || ratio < best_ratio) {
        best = static_cast<int>(u);
        best_ratio = ratio;
      }
    }
    if (best < 0) break;
    --c[best];
    curve.push_back(c);
  }
  return curve;
}

void allocate_pareto(AllocContext& ctx) {
  Problem p = context_problem(ctx, true);
  std::vector<Choice> curve = pareto_curve(p);
  // Size-like budgets: feasibility is monotone along the curve (each step is cheaper), so binary
  // search the first feasible point. max_drop: predicted loss grows along the curve, so the last
  // point within the drop is the smallest; binary search that boundary instead.
  auto ok = [&](size_t i) { return feasible(p, curve[i]); };
  size_t pick = 0;
  bool found = false;
  if (p.objective == "size_bits") {
    size_t lo = 0, hi = curve.size();  // last feasible index, feasible prefix
    if (ok(0)) {
      while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (ok(mid)) lo = mid; else hi = mid;
      }
      pick = lo;
      found = true;
    }
  } else {
    size_t lo = 0, hi = curve.size() - 1;  // first feasible index
    if (ok(hi)) {
      while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (ok(mid)) hi = mid; else lo = mid + 1;
      }
      pick = lo;
      found = true;
    }
  }
  nlohmann::json params = {{"curve_points", curve.size()}};
  if (!found) {
    finish_plan(p, fallback_choice(p), "pareto", params, context_budget(ctx), ctx.plan);
    return;
  }
  // Re-measure the chosen point and its feasible neighbours on the costly side: the prediction is
  // additive, the measurement is not.
  std::vector<size_t> cand = {pick};
  const int k = 3;
  for (int d = 1; d <= k; ++d) {
    size_t i = p.objective == "size_bits" ? pick - std::min<size_t>(pick, d) : pick + d;
    if (i < curve.size() && ok(i) && std::find(cand.begin(), cand.end(), i) == cand.end()) cand.push_back(i);
  }
  size_t chosen = pick;
  if (ctx.measure && ctx.opts.measure && cand.size() > 1) {
    nlohmann::json measured = nlohmann::json::array();
    double best_acc = -1, best_loss = 0;
    for (size_t i : cand) {
      QuantPlan trial = ctx.plan;
      apply_choice(p, curve[i], trial);
      auto [acc, loss] = ctx.measure(trial);
      measured.push_back({{"point", i}, {"predicted", predicted_loss(p, curve[i])}, {"calib_top1", acc},
                          {"calib_loss", loss}, {"avg_wbits", trial.cost.avg_wbits}});
      if (acc > best_acc || (acc == best_acc && loss < best_loss)) {
        best_acc = acc;
        best_loss = loss;
        chosen = i;
      }
    }
    params["measured"] = measured;
  }
  params["point"] = chosen;
  finish_plan(p, curve[chosen], "pareto", params, context_budget(ctx), ctx.plan);
}

}  // namespace mixq
