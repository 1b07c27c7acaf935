// HAGO greedy (seed 001, HAGO: hardware-aware automated post-training quantization; METHODS.md):
// the search space of each layer's weights is the bit-widths the hardware spec allows for its op
// (intersected over a shared-precision group), and of each activation edge (a tensor quantized for
// the layers reading it) the activation bits every reader's op allows, up to the plan's; edge by
// edge in network order (an input edge before its layer's weights), try the allowed bit-widths from
// high to low and keep the lowest whose *measured* calibration top-1 does not fall below the best
// seen so far minus a tolerance (--max-drop in points, default 0); the first bit-width that fails
// ends that edge's descent (accuracy is assumed monotone in bits). Without --hw every layer may use
// 2-8 weight bits and activations stay at the plan's bits.
// Budgets: HAGO's own search has none. When one is given and the greedy pass ends over it, further
// passes repeat the same greedy over the edges that still save budget with the tolerance relaxed
// (0.25 points, doubling each pass), stopping as soon as the plan fits: the least accuracy given
// up, by HAGO's own measure, to reach the budget. The report lists the passes and the tolerance
// that met the budget.
#include <algorithm>

#include "core/log.h"
#include "core/progress.h"
#include "mixq/error.h"
#include "search/allocator.h"
#include "search/context.h"
#include "search/solvers.h"

namespace mixq {

void allocate_hago(AllocContext& ctx) {
  MIXQ_CHECK(ctx.measure, ErrorKind::kInvalidArgument, "--search hago measures accuracy: it needs --calib data with labels");
  Budget b = context_budget(ctx);
  const double tol0 = b.max_drop >= 0 ? b.max_drop : 0;
  Budget size_only = b;
  size_only.max_drop = -1;  // HAGO's tolerance is in accuracy points, not a table constraint
  Problem p = context_problem(ctx, false);
  {
    // max_drop is the last constraint (build_problem); pair coefficients index the others.
    std::vector<Constraint> keep;
    for (auto& k : p.constraints)
      if (k.name != "max_drop") keep.push_back(std::move(k));
    p.constraints = std::move(keep);
    for (auto& t : p.pairs) t.coef.resize(p.constraints.size());
  }
  // Network order: by first layer; an activation edge before the weights of its first reader.
  std::vector<size_t> order;
  for (size_t u = 0; u < p.units.size(); ++u)
    if (!p.units[u].fixed()) order.push_back(u);
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    const ChoiceUnit &X = p.units[x], &Y = p.units[y];
    const int fx = *std::min_element(X.layers.begin(), X.layers.end());
    const int fy = *std::min_element(Y.layers.begin(), Y.layers.end());
    return fx != fy ? fx < fy : X.is_act() > Y.is_act();
  });
  Choice c = highest_choice(p);
  QuantPlan trial = ctx.plan;
  auto measure = [&](const Choice& t) {
    apply_choice(p, t, trial);
    return ctx.measure(trial).first;
  };
  double best = measure(c);
  int measured = 1;
  const bool budgeted = !p.constraints.empty();
  nlohmann::json passes = nlohmann::json::array();
  double tol = tol0;
  for (int pass = 0;; ++pass) {
    const bool relax = pass > 0;  // budget passes: only edges that reduce the violation
    Progress bar(relax ? "hago (budget)" : "hago", static_cast<int64_t>(order.size()), "edges");
    for (size_t u : order) {
      for (int o = c[u] - 1; o >= 0; --o) {
        if (relax && feasible(p, c)) break;
        Choice t = c;
        t[u] = o;
        if (relax && violation(p, t) >= violation(p, c)) break;
        double acc = measure(t);
        ++measured;
        if (acc < best - tol) break;
        c = t;
        best = std::max(best, acc);
      }
      bar.advance();
      bar.set_postfix("top1 " + std::to_string(best).substr(0, 5) + "%");
    }
    bar.finish();
    passes.push_back({{"tolerance_points", tol}, {"calib_top1", best}, {"fits_budget", feasible(p, c)}});
    if (!budgeted || feasible(p, c) || tol >= 100) break;
    tol = std::max(0.25, 2 * tol);
  }
  p.objective = "loss";
  nlohmann::json params = {{"calib_top1", best}, {"measured_plans", measured}, {"tolerance_points", tol0}};
  if (budgeted) params["passes"] = passes;
  finish_plan(p, c, "hago", params, size_only, ctx.plan);
  ctx.plan.search_params.erase("predicted");
}

}  // namespace mixq
