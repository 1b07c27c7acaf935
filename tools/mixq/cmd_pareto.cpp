// mixq pareto MODEL: measure the sensitivity table once (cached, resumable), then emit the
// size x BOPs x predicted-accuracy front: the greedy Pareto curve plus integer-program optima on a
// grid of average weight bits, and (when the table has activation candidates) on a grid of BOPs
// budgets, where weight and activation bits trade against each other. Any budget can then be
// re-solved from the table with `mixq plan`.
#include <cmath>
#include <cstdio>

#include "api/allocate_step.h"
#include "api/front.h"
#include "api/report_html.h"
#include "api/quantize_job.h"
#include "common.h"
#include "core/atomic_file.h"
#include "core/interrupt.h"
#include "mixq/error.h"
#include "search/hw_spec.h"
#include "search/problem.h"
#include "search/solvers.h"

namespace mixq::cli {

void add_quant_options(CLI::App& sub, QuantizeJob& job);

RunFn setup_pareto(CLI::App& sub) {
  struct Opts {
    GlobalOptions g;
    QuantizeJob job;
    std::string out, table_out, report_html;
    double grid_step = 0.25;
  };
  auto o = std::make_shared<Opts>();
  o->job.defaults.wbits = 8;
  sub.add_option("model", o->job.model_path, "Float ONNX model")->required();
  add_quant_options(sub, o->job);
  sub.add_option("-o,--output", o->out, "Write the front (JSON) here");
  sub.add_option("--report-html", o->report_html,
                 "Write a self-contained HTML report here: the front and the sensitivity heatmap");
  sub.add_option("--table-out", o->table_out, "Write (and resume) the sensitivity table here")->required();
  sub.add_option("--grid-step", o->grid_step, "Average-bits step of the integer-program points")->capture_default_str();
  add_global_options(sub, o->g);
  return [o]() {
    apply_global_options(o->g);
    QuantizeJob& job = o->job;
    MIXQ_CHECK(o->grid_step > 0, ErrorKind::kInvalidArgument, "--grid-step must be > 0");
    for (const std::string* p : {&o->out, &o->table_out, &o->report_html})
      MIXQ_CHECK(p->empty() || !same_file(*p, job.model_path), ErrorKind::kInvalidArgument,
                 "refusing to overwrite the input model '", job.model_path, "' with ", *p);
    PreparedPlan pp = prepare_plan(job.model_path, job.defaults, job.method, {job.calib, job.preprocess, job.input_shapes});
    std::unique_ptr<HwSpec> hw;
    if (!job.hw_path.empty()) {
      hw = std::make_unique<HwSpec>(load_hw_spec(job.hw_path));
      fit_plan_to_spec(pp.plan, *hw);
    }
    auto calib = std::move(pp.calib);
    SensitivityOptions so = job.sens;
    so.calib_spec = job.calib;
    so.model_path = job.model_path;
    so.cache_path = o->table_out;
    so.progress = !o->g.quiet;
    SensitivityTable t = measure_sensitivity(pp.prepared, pp.plan, calib.get(), so);
    throw_if_interrupted();  // the front takes seconds; the table is saved, the front is not written
    std::vector<std::vector<int>> groups;
    if (hw)
      for (auto& g : shared_groups(*hw, pp.prepared, pp.plan))
        if (g.size() > 1) groups.push_back(g);
    const std::string sig = resolve_signal(job.search_opts.signal, &t);
    const nlohmann::json points = pareto_front(pp.plan, t, sig, groups, hw.get(), o->grid_step);
    nlohmann::json j = {{"model", job.model_path},
                        {"table", o->table_out},
                        {"signal", sig},
                        {"sensitivity_seconds", t.seconds},
                        {"samples", t.samples},
                        {"float_top1_calib", t.float_top1},
                        {"ref_top1_calib", t.ref_top1},
                        {"points", points}};
    if (!o->out.empty()) write_file_atomic(o->out, j.dump(1) + "\n");
    if (!o->report_html.empty()) {
      const nlohmann::json view = {
          {"title", "mixq pareto " + job.model_path},
          {"summary", {{"front points", points.size()}, {"signal", sig}, {"sensitivity samples", t.samples},
                       {"sensitivity seconds", t.seconds}, {"float top-1 (calibration)", t.float_top1}}},
          {"settings", {{"model", job.model_path}, {"calib", job.calib}, {"table", o->table_out},
                        {"grid step", o->grid_step}, {"method", job.method}}},
          {"front", points},
          {"sensitivity", sensitivity_matrix(t, sig)}};
      write_file_atomic(o->report_html, render_report_html(view));
    }
    if (o->g.json) {
      print_json(j);
      return 0;
    }
    std::printf("%s: sensitivity table %s (%lld samples, %.1f s), %zu front points (signal %s)\n",
                job.model_path.c_str(), o->table_out.c_str(), (long long)t.samples, t.seconds, points.size(),
                sig.c_str());
    std::printf("%-8s %9s %11s %12s %12s %9s\n", "source", "avg bits", "size bytes", "GBOPs", "pred dL", "pred top1");
    for (const auto& p : points)
      if (p["source"].get<std::string>().rfind("ip@", 0) == 0)
        std::printf("%-8s %9.2f %11lld %12.4f %12.5f %9.2f\n", p["source"].get<std::string>().c_str(),
                    p["avg_wbits"].get<double>(), (long long)p["size_bytes"].get<int64_t>(), p["bops"].get<double>() / 1e9,
                    p["predicted_dl"].get<double>(), p["predicted_top1"].get<double>());
    for (const std::string* p : {&o->out, &o->report_html})
      if (!p->empty()) std::printf("wrote %s\n", p->c_str());
    return 0;
  };
}

}  // namespace mixq::cli
