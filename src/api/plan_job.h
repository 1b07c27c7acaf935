// The job behind `mixq plan --from-table` and `mixq.plan_from_table(...)`: solve a budget from a
// cached sensitivity table without measuring or quantizing anything (the model is loaded only for
// its layer shapes and sizes, and checked against the table's hash).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "quant/plan.h"

namespace mixq {

struct QuantizeJob;

struct PlanFromTable {
  QuantPlan plan;
  // {search, search_params, budget, avg_wbits, size_bytes, bops, seconds, plan}
  nlohmann::json summary;
};

// job.table_path is the table, job.search the allocator (ip, pareto, genetic), job.search_opts
// the budget; `model` overrides the path recorded in the table; `out` (optional) gets the plan.
PlanFromTable run_plan_from_table(const QuantizeJob& job, const std::string& model, const std::string& out);

}  // namespace mixq
