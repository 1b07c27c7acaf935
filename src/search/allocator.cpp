#include "search/allocator.h"

#include <memory>

#include "mixq/error.h"
#include "search/context.h"
#include "search/hw_spec.h"
#include "search/latency.h"
#include "search/sensitivity.h"
#include "search/solvers.h"

namespace mixq {

const std::vector<AllocatorRow>& allocator_table() {
  static const std::vector<AllocatorRow> rows = {
      {"uniform", "every unpinned layer at --wbits", false, allocate_uniform},
      {"mixquant", "per-layer bits from weight roundoff error (MixQuant, --qem or --budget-bits)", false, allocate_mixquant},
      {"ip", "integer program (CBC) over the sensitivity table under the budgets", true, allocate_ip,
       [](const Problem& p, const SearchOptions&) { return solve_ip(p); }},
      {"pareto", "greedy Pareto curve over the sensitivity table, budget point re-measured", true, allocate_pareto},
      {"genetic", "genetic search over the sensitivity table under the budgets (BRECQ)", true, allocate_genetic,
       [](const Problem& p, const SearchOptions& o) {
         GeneticOptions go;
         go.seed = o.seed;
         return solve_genetic(p, go);
       }},
      {"hago", "HAGO greedy under a hardware spec: lowest bits that keep calibration accuracy", false, allocate_hago},
      {"floorceil", "--floorceil-base bits (uniform), inputs at weight bits, then floor/ceil rounding per layer or channel "
                    "for a lower calibration loss (seed 004)", false, allocate_floorceil},
      {"fracbits", "FracBits: fractional bit-widths learned on calibration data under a size or BOPs budget, "
                   "rounded by a global offset (seed 002)", false, allocate_fracbits},
  };
  return rows;
}

const AllocatorRow& find_allocator(const std::string& name) {
  for (const auto& r : allocator_table())
    if (name == r.name) return r;
  std::string names;
  for (const auto& r : allocator_table()) names += std::string(names.empty() ? "" : ", ") + r.name;
  throw Error(ErrorKind::kInvalidArgument, "unknown search '" + name + "' (available: " + names + ")");
}

Budget context_budget(const AllocContext& ctx) { return effective_budget(ctx.opts.budget, ctx.opts.budget_avg_wbits); }

Problem context_problem(AllocContext& ctx, bool with_table, const QuantPlan* from) {
  const QuantPlan& plan = from ? *from : ctx.plan;
  Budget b = context_budget(ctx);
  std::vector<std::vector<int>> groups;
  if (ctx.hw)
    for (auto& g : shared_groups(*ctx.hw, ctx.prepared, plan))
      if (g.size() > 1) groups.push_back(g);
  std::unique_ptr<LatencyTable> lat;
  if (!ctx.opts.latency_table.empty()) lat = std::make_unique<LatencyTable>(load_latency_table(ctx.opts.latency_table));
  const SensitivityTable* t = nullptr;
  if (with_table) {
    MIXQ_CHECK(ctx.table, ErrorKind::kInvalidArgument, "this search needs calibration data (--calib) for its sensitivity table");
    t = &ctx.table();
  }
  return build_problem(plan, t, ctx.opts.signal, b, groups, ctx.hw, lat.get());
}

void allocate_uniform(AllocContext& ctx) {
  for (auto& L : ctx.plan.layers)
    if (!L.pinned) L.weight_scheme.bits = ctx.opts.wbits;
  ctx.plan.search = "uniform";
  ctx.plan.search_params = {{"wbits", ctx.opts.wbits}};
  update_cost(ctx.plan);
}

}  // namespace mixq
