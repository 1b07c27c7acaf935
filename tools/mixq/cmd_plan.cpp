// mixq plan --from-table T: solve a budget from a cached sensitivity table and write the
// QuantPlan, without measuring or quantizing anything (the model is only loaded for its layer
// shapes and sizes, and checked against the table's hash).
#include <cstdio>

#include "api/plan_job.h"
#include "api/quantize_job.h"
#include "common.h"

namespace mixq::cli {

RunFn setup_plan(CLI::App& sub) {
  struct Opts {
    GlobalOptions g;
    QuantizeJob job;
    std::string model, out;
  };
  auto o = std::make_shared<Opts>();
  add_plan_options(sub, o->job, o->model);
  sub.add_option("-o,--output", o->out, "Write the QuantPlan (JSON) here");
  add_global_options(sub, o->g);
  return [o]() {
    apply_global_options(o->g);
    const PlanFromTable r = run_plan_from_table(o->job, o->model, o->out);
    const QuantPlan& plan = r.plan;
    const nlohmann::json& j = r.summary;
    const double secs = j["seconds"].get<double>();
    QuantizeJob& job = o->job;
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
