#include "api/pareto_job.h"

#include "api/allocate_step.h"
#include "api/front.h"
#include "api/quantize_job.h"
#include "api/report_html.h"
#include "core/atomic_file.h"
#include "core/interrupt.h"
#include "dist/dist.h"
#include "mixq/error.h"
#include "search/hw_spec.h"
#include "search/problem.h"
#include "search/solvers.h"

namespace mixq {

nlohmann::json run_pareto(const QuantizeJob& job, const ParetoOutputs& out, bool progress) {
  MIXQ_CHECK(out.grid_step > 0, ErrorKind::kInvalidArgument, "--grid-step must be > 0");
  MIXQ_CHECK(!out.table.empty(), ErrorKind::kInvalidArgument, "pareto needs a sensitivity table file (--table-out)");
  for (const std::string* p : {&out.front, &out.table, &out.report_html})
    MIXQ_CHECK(p->empty() || !same_file(*p, job.model_path), ErrorKind::kInvalidArgument,
               "refusing to overwrite the input model '", job.model_path, "' with ", *p);
  PreparedPlan pp = prepare_plan(job.model_path, job.defaults, job.method, {job.calib, job.preprocess, job.input_shapes, calib_sampling_of(job)});
  std::unique_ptr<HwSpec> hw;
  if (!job.hw_path.empty()) {
    hw = std::make_unique<HwSpec>(load_hw_spec(job.hw_path));
    fit_plan_to_spec(pp.plan, *hw);
  }
  auto calib = std::move(pp.calib);
  SensitivityOptions so = job.sens;
  so.calib_spec = calib_sampling_of(job).key(job.calib);
  so.model_path = job.model_path;
  so.cache_path = out.table;
  so.progress = progress;
  SensitivityTable t = measure_sensitivity(pp.prepared, pp.plan, calib.get(), so);
  dist::release_workers();  // MPI: the table is made; the front and the files are rank 0's
  throw_if_interrupted();  // the front takes seconds; the table is saved, the front is not written
  std::vector<std::vector<int>> groups;
  if (hw)
    for (auto& g : shared_groups(*hw, pp.prepared, pp.plan))
      if (g.size() > 1) groups.push_back(g);
  const std::string sig = resolve_signal(job.search_opts.signal, &t);
  const nlohmann::json points = pareto_front(pp.plan, t, sig, groups, hw.get(), out.grid_step);
  nlohmann::json j = {{"model", job.model_path},
                      {"table", out.table},
                      {"signal", sig},
                      {"sensitivity_seconds", t.seconds},
                      {"samples", t.samples},
                      {"float_top1_calib", t.float_top1},
                      {"ref_top1_calib", t.ref_top1},
                      {"points", points}};
  if (!out.front.empty()) write_file_atomic(out.front, j.dump(1) + "\n");
  if (!out.report_html.empty()) {
    const nlohmann::json view = {
        {"title", "mixq pareto " + job.model_path},
        {"summary", {{"front points", points.size()}, {"signal", sig}, {"sensitivity samples", t.samples},
                     {"sensitivity seconds", t.seconds}, {"float top-1 (calibration)", t.float_top1}}},
        {"settings", {{"model", job.model_path}, {"calib", job.calib}, {"table", out.table},
                      {"grid step", out.grid_step}, {"method", job.method}}},
        {"front", points},
        {"sensitivity", sensitivity_matrix(t, sig)}};
    write_file_atomic(out.report_html, render_report_html(view));
  }
  return j;
}

}  // namespace mixq
