// Greedy Pareto allocator: from every unit (layer, shared group, activation tensor) at its highest
// option, repeatedly move the one unit to the lower option that adds the least predicted
// sensitivity per unit of cost saved, keeping every point: the whole accuracy/cost curve from one
// sensitivity table. A budget is met at the first feasible point of the curve; the few feasible
// points around it are then re-measured on the calibration data (real quantization, not the
// additive prediction) and the best measured one is kept.
#include <algorithm>
#include <cmath>

#include "core/log.h"
#include "search/allocator.h"
#include "search/context.h"
#include "search/solvers.h"

namespace mixq {

namespace {

// The cost the greedy trades against: the budgets the user gave (every constraint but the loss
// itself, each relative to its limit, pair coefficients included), else stored bits. Summing them
// lets a step that saves only one budget (bytes, when a per-group option drops to per-channel at
// the same BOPs) still count.
double step_cost(const Problem& p, const Choice& c) {
  double s = 0;
  bool any = false;
  for (size_t k = 0; k < p.constraints.size(); ++k)
    if (p.constraints[k].name != "max_drop") {
      s += constraint_total(p, k, c) / std::max(1e-30, std::fabs(p.constraints[k].limit));
      any = true;
    }
  if (any) return s;
  for (size_t u = 0; u < c.size(); ++u) s += p.units[u].size_bits[c[u]];
  return s;
}

}  // namespace

std::vector<Choice> pareto_curve(const Problem& p) {
  Choice c = highest_choice(p);
  std::vector<Choice> curve = {c};
  for (;;) {
    int best = -1, best_o = 0;
    double best_ratio = 0;
    const double cost0 = step_cost(p, c), loss0 = predicted_loss(p, c);
    // Any lower option of one unit, not only the next: with per-group options the order by size
    // is not the order by BOPs, and the next option down can save nothing of the budget.
    for (size_t u = 0; u < p.units.size(); ++u)
      for (int o = c[u] - 1; o >= 0; --o) {
        Choice t = c;
        t[u] = o;
        const double dcost = cost0 - step_cost(p, t);
        if (dcost <= 0) continue;  // saves nothing of the budget (e.g. activation bits under a size budget)
        const double ratio = (predicted_loss(p, t) - loss0) / dcost;
        if (best < 0 || ratio < best_ratio) {
          best = static_cast<int>(u);
          best_o = o;
          best_ratio = ratio;
        }
      }
    if (best < 0) break;
    c[best] = best_o;
    curve.push_back(c);
  }
  return curve;
}

void allocate_pareto(AllocContext& ctx) {
  Problem p = context_problem(ctx, true);
  std::vector<Choice> curve = pareto_curve(p);
  // Size-like budgets: the first feasible point (the curve gets cheaper in the budgets' sum with
  // every step, the predicted loss grows). max_drop: the last point within the drop is the
  // smallest. Linear scans: with several budgets no single one need fall at every step.
  auto ok = [&](size_t i) { return feasible(p, curve[i]); };
  size_t pick = 0;
  bool found = false;
  if (p.objective == "size_bits") {
    for (size_t i = 0; i < curve.size() && ok(i); ++i) {
      pick = i;
      found = true;
    }
  } else {
    for (size_t i = 0; i < curve.size() && !found; ++i)
      if (ok(i)) {
        pick = i;
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
