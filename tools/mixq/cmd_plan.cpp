// mixq plan --from-table T: solve a budget from a cached sensitivity table and write the
// QuantPlan, without measuring or quantizing anything (the model is only loaded for its layer
// shapes and sizes, and checked against the table's hash).
#include <chrono>
#include <cstdio>

#include "api/allocate_step.h"
#include "api/quantize_job.h"
#include "common.h"
#include "core/atomic_file.h"
#include "core/log.h"
#include "mixq/error.h"

namespace mixq::cli {

RunFn setup_plan(CLI::App& sub) {
  struct Opts {
    GlobalOptions g;
    QuantizeJob job;
    std::string model, out;
  };
  auto o = std::make_shared<Opts>();
  o->job.search = "ip";
  sub.add_option("--from-table", o->job.table_path, "Sensitivity table (from `mixq pareto --table-out`)")->required();
  sub.add_option("--model", o->model, "The model (default: the path recorded in the table)");
  sub.add_option("--search", o->job.search, "Allocator: ip, pareto, genetic")
      ->check(CLI::IsMember({"ip", "pareto", "genetic"}))->capture_default_str();
  sub.add_option("--budget-bits", o->job.search_opts.budget_avg_wbits, "Target average weight bits");
  sub.add_option("--seed", o->job.search_opts.seed, "Seed (genetic)")->capture_default_str();
  add_budget_options(sub, o->job);
  sub.add_option("-o,--output", o->out, "Write the QuantPlan (JSON) here");
  add_global_options(sub, o->g);
  return [o]() {
    apply_global_options(o->g);
    auto t0 = std::chrono::steady_clock::now();
    QuantizeJob& job = o->job;
    MIXQ_CHECK(job.search_opts.budget_avg_wbits > 0 || job.search_opts.budget.any(), ErrorKind::kInvalidArgument,
               "give a budget: --budget-bits, --budget-bytes, --budget-bops, --budget-latency-ms or --max-drop");
    SensitivityTable t = load_table(job.table_path);
    std::string model = o->model.empty() ? t.model : o->model;
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
    if (!o->out.empty()) {
      MIXQ_CHECK(!same_file(o->out, model), ErrorKind::kInvalidArgument, "refusing to overwrite the model with ", o->out);
      save_plan(plan, o->out);
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    nlohmann::json j = {{"search", plan.search}, {"search_params", plan.search_params}, {"budget", plan.budget},
                        {"avg_wbits", plan.cost.avg_wbits}, {"size_bytes", plan.cost.size_bytes},
                        {"bops", plan.cost.bops}, {"seconds", secs}, {"plan", o->out}};
    if (o->g.json) {
      print_json(j);
      return 0;
    }
    std::printf("%s plan from %s: avg %.2f weight bits, %lld bytes, %.4f GBOPs, predicted %s %.5f (%.2f s)\n",
                plan.search.c_str(), job.table_path.c_str(), plan.cost.avg_wbits, (long long)plan.cost.size_bytes,
                plan.cost.gbops(), plan.search_params.value("signal", job.search_opts.signal).c_str(), plan.search_params.value("predicted", 0.0), secs);
    if (!o->out.empty()) std::printf("wrote %s\n", o->out.c_str());
    return 0;
  };
}

}  // namespace mixq::cli
