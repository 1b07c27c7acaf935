// Helpers shared by the table-driven allocators: the Problem for an AllocContext (its plan, the
// sensitivity table, the hardware spec's allowed bits and shared groups, the latency table, the
// budget from the options).
#pragma once

#include "search/allocator.h"
#include "search/problem.h"

namespace mixq {

Budget context_budget(const AllocContext& ctx);
// with_table = false: every option predicts 0 (allocators that measure instead, e.g. HAGO).
// `from`: the plan to build on (default ctx.plan; the additivity check passes the plan before
// allocation, whose schemes are the options' starting point).
Problem context_problem(AllocContext& ctx, bool with_table, const QuantPlan* from = nullptr);

}  // namespace mixq
