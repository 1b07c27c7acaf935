// HAGO greedy (seed 001, HAGO: hardware-aware automated post-training quantization; METHODS.md):
// the search space of each layer is the weight bit-widths the hardware spec allows for its op
// (intersected over a shared-precision group); layer by layer in network order, try the allowed
// bit-widths from high to low and keep the lowest whose *measured* calibration top-1 does not
// fall below the best seen so far minus a tolerance (--max-drop in points, default 0); the first
// bit-width that fails ends that layer's descent (accuracy is assumed monotone in bits). Budgets
// are not part of HAGO's search: when one is given and the result misses it, the plan is still
// returned with the infeasibility report. Without --hw every layer may use 2-8 bits.
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
  const double tol = b.max_drop >= 0 ? b.max_drop : 0;
  Budget size_only = b;
  size_only.max_drop = -1;  // HAGO's tolerance is in accuracy points, not a table constraint
  Problem p = context_problem(ctx, false);
  {
    // Constraints for the report only (context_problem used the full budget).
    std::vector<Constraint> keep;
    for (auto& k : p.constraints)
      if (k.name != "max_drop") keep.push_back(std::move(k));
    p.constraints = std::move(keep);
  }
  Choice c = highest_choice(p);
  QuantPlan trial = ctx.plan;
  apply_choice(p, c, trial);
  double best = ctx.measure(trial).first;
  int measured = 1;
  int64_t todo = 0;
  for (const auto& u : p.units) todo += !u.fixed();
  Progress bar("hago", todo, "layers");
  for (size_t u = 0; u < p.units.size(); ++u) {
    if (p.units[u].fixed()) continue;
    for (int o = c[u] - 1; o >= 0; --o) {
      Choice t = c;
      t[u] = o;
      apply_choice(p, t, trial);
      double acc = ctx.measure(trial).first;
      ++measured;
      if (acc < best - tol) break;
      c = t;
      best = std::max(best, acc);
    }
    bar.advance();
    bar.set_postfix("top1 " + std::to_string(best).substr(0, 5) + "%");
  }
  bar.finish();
  p.objective = "loss";
  finish_plan(p, c, "hago", {{"calib_top1", best}, {"measured_plans", measured}, {"tolerance_points", tol}},
              size_only, ctx.plan);
  ctx.plan.search_params.erase("predicted");
}

}  // namespace mixq
