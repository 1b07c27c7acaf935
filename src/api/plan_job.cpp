#include "api/plan_job.h"

#include <chrono>

#include "api/allocate_step.h"
#include "api/quantize_job.h"
#include "core/atomic_file.h"
#include "mixq/error.h"

namespace mixq {

PlanFromTable run_plan_from_table(const QuantizeJob& job, const std::string& model_arg, const std::string& out) {
  auto t0 = std::chrono::steady_clock::now();
  MIXQ_CHECK(job.search_opts.budget_avg_wbits > 0 || job.search_opts.budget.any(), ErrorKind::kInvalidArgument,
             "give a budget: --budget-bits, --budget-bytes, --budget-bops, --budget-latency-ms or --max-drop");
  SensitivityTable t = load_table(job.table_path);
  std::string model = model_arg.empty() ? t.model : model_arg;
  MIXQ_CHECK(!model.empty(), ErrorKind::kInvalidArgument, job.table_path, ": the table names no model; pass --model");
  std::string want = t.key.value("model_hash", std::string());
  MIXQ_CHECK(want.empty() || file_hash(model) == want, ErrorKind::kInvalidArgument, job.table_path,
             ": the table was measured on another model file than '", model,
             "' (hash differs); recompute it with `mixq pareto`");
  PreparedPlan pp = prepare_plan(model, PlanDefaults{}, t.plan.value("method", std::string("minmax")));
  // The reference plan stored in the table carries the schemes and pinning it was measured with.
  QuantPlan plan = plan_from_json(t.plan, pp.plan, job.table_path + " (plan)");
  plan.model = model;
  AllocateStep step;
  step.search = job.search;
  step.opts = job.search_opts;
  step.opts.measure = false;
  step.hw_path = job.hw_path;
  step.table_path = job.table_path;
  step.sens = job.sens;  // which of the table's candidates to use
  step.progress = false;
  nlohmann::json summary = run_allocation(step, pp.prepared, plan, nullptr);
  if (!out.empty()) {
    MIXQ_CHECK(!same_file(out, model), ErrorKind::kInvalidArgument, "refusing to overwrite the model with ", out);
    save_plan(plan, out);
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  PlanFromTable r;
  r.summary = {{"search", plan.search}, {"search_params", plan.search_params}, {"budget", plan.budget},
                      {"avg_wbits", plan.cost.avg_wbits}, {"size_bytes", plan.cost.size_bytes},
                      {"bops", plan.cost.bops}, {"seconds", secs}, {"plan", out}};
  r.plan = std::move(plan);
  return r;
}

}  // namespace mixq
