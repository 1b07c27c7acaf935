#include "api/allocate_step.h"

#include <ATen/ATen.h>

#include <chrono>
#include <memory>

#include "core/log.h"
#include "exec/evaluate.h"
#include "exec/executor.h"
#include "mixq/error.h"
#include "quant/qdq.h"
#include "quant/sparq_apply.h"
#include "quant/quantize.h"
#include "api/front.h"
#include "api/quantize_job.h"
#include "api/report_html.h"
#include "exec/shapes.h"
#include "graph/fold_bn.h"
#include "graph/layers.h"
#include "exec/fold_constants.h"
#include "pack/from_qmodel.h"
#include "search/additivity.h"
#include "search/context.h"
#include "search/hw_spec.h"
#include "search/probe.h"

namespace mixq {

std::pair<double, double> measure_plan(const Graph& prepared, const QuantPlan& plan, const Dataset& data) {
  QuantizeOptions qo;
  qo.progress = false;
  QuantizedModel qm = quantize_model(prepared, plan, data, qo);
  std::unique_ptr<Executor> sim = simulation_executor(qm);  // QDQ + SPARQ where the plan asks
  Executor& ex = *sim;
  if (data.has_labels()) {
    EvalOptions eo;
    eo.progress = false;
    eo.batch_size = 256;
    EvalResult r = evaluate(ex, data, eo);
    if (r.has_top1) return {r.top1, r.loss};
  }
  // No labels (or no class scores): agreement with the float model and the fidelity loss, as
  // the sensitivity table measures them (search/probe.h).
  Executor fex(prepared);
  std::vector<at::Tensor> zf, zq;
  bool classes = true, c = true;
  for (int64_t b = 0; b < data.size(); b += 256) {
    Batch batch = data.get(b, std::min(data.size(), b + 256));
    zf.push_back(comparable_outputs(fex.run(batch.inputs), &c, prepared.source_path));
    classes = classes && c;
    zq.push_back(comparable_outputs(ex.run(batch.inputs), &c, prepared.source_path));
  }
  ProbeMetrics m = compare_to_float(at::cat(zf), at::cat(zq), classes, at::Tensor());
  return {m.top1, m.loss};
}

nlohmann::json run_allocation(const AllocateStep& step, const Graph& prepared, QuantPlan& plan, const Dataset* calib) {
  const AllocatorRow& row = find_allocator(step.search);
  nlohmann::json summary = nlohmann::json::object();
  std::unique_ptr<HwSpec> hw;
  if (!step.hw_path.empty()) {
    hw = std::make_unique<HwSpec>(load_hw_spec(step.hw_path));
    fit_plan_to_spec(plan, *hw);
    summary["hw"] = hw->name;
  }
  // Say up front what pinning by position costs (the request cannot be met otherwise, and the
  // allocators would only report the binding layers afterwards).
  const double target = step.opts.budget_avg_wbits > 0 ? step.opts.budget_avg_wbits : step.opts.wbits;
  nlohmann::json pin_warnings = nlohmann::json::array();
  for (const std::string& w : pinned_share_warnings(plan, target)) {
    log::warn(w);
    pin_warnings.push_back(w);
  }
  if (!pin_warnings.empty()) summary["pinned_warnings"] = pin_warnings;
  {  // First/last layers left unpinned because they hold most of the weights (quant/plan.h).
    double total = 0;
    for (const auto& L : plan.layers) total += double(L.params);
    nlohmann::json dominant = nlohmann::json::array();
    for (size_t i = 0; i < plan.layers.size(); ++i) {
      const LayerPlan& L = plan.layers[i];
      if ((i == 0 || i + 1 == plan.layers.size()) && !L.pinned && !is_embedding_table(L) &&
          is_dominant(double(L.params), total)) {
        log::verbose("layer '" + L.name + "' holds " + std::to_string(int(std::lround(100 * double(L.params) / total))) +
                  "% of the weights: not pinned as first/last layer, so the bits it gets decide the average");
        dominant.push_back(L.name);
      }
    }
    if (!dominant.empty()) summary["unpinned_dominant"] = dominant;
  }
  std::unique_ptr<Dataset> sub;
  if (calib) sub = head_dataset(*calib, step.sens.samples);
  std::unique_ptr<SensitivityTable> table;
  std::unique_ptr<SensitivityProbe> probe;  // the table's instrument, reused by the additivity check
  const QuantPlan base = plan;  // the table is measured on the plan before allocation
  AllocContext ctx{prepared, plan, step.opts, hw.get(), nullptr, nullptr, nullptr, nullptr, nullptr};
  if (!step.table_path.empty() || calib) {
    ctx.table = [&]() -> const SensitivityTable& {
      if (!table) {
        if (!step.table_path.empty()) {
          // A table from a file may hold more candidates than this run asks for.
          table = std::make_unique<SensitivityTable>(
              with_candidates(load_table(step.table_path), step.sens.act_bits, step.sens.group_sizes));
        } else {
          SensitivityOptions so = step.sens;
          so.progress = step.progress;
          // Activation candidates only serve BOPs budgets (search/problem.h): do not measure them
          // for a table this job alone will use under other budgets.
          if (context_budget(ctx).bops <= 0) so.act_bits.clear();
          table = std::make_unique<SensitivityTable>(measure_sensitivity(prepared, base, calib, so, &probe));
        }
        summary["sensitivity_seconds"] = table->seconds;
        summary["sensitivity_samples"] = table->samples;
      }
      return *table;
    };
  }
  if (calib) ctx.measure = [&](const QuantPlan& p) { return measure_plan(prepared, p, *sub); };
  ctx.calib = calib;
  ctx.tune = step.tune;
  ctx.open_data = step.open_data;
  auto t0 = std::chrono::steady_clock::now();
  row.run(ctx);
  summary["allocate_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (table && calib && row.resolve && step.opts.additivity_tol >= 0 && plan.search_params.contains("predicted")) {
    RepairOptions ro;
    ro.tolerance = step.opts.additivity_tol;
    ro.rounds = step.opts.repair_rounds;
    ro.max_pairs = step.opts.repair_pairs;
    const SearchOptions& so = step.opts;
    summary["additivity"] =
        check_and_repair(ctx, *table, base, *calib, [&](const Problem& p) { return row.resolve(p, so); }, ro,
                         probe.get());
  }
  probe.reset();
  if (hw) check_plan_against_spec(plan, *hw, prepared);
  // Additivity check: the table predicts the calibration-loss increase as a sum of single-layer
  // increases; measure the real one on the same samples and report both.
  if (table && ctx.measure && plan.search_params.contains("predicted")) {
    auto [acc, loss] = ctx.measure(plan);
    // The dl prediction of the same plan, whatever signal chose it (the table holds every signal).
    const double pred = predicted_signal(*table, plan, "dl");
    summary["predicted_dl"] = pred;
    summary["measured_dl"] = loss - table->ref_loss;
    summary["calib_top1"] = acc;
    log::verbose("predicted calibration loss increase " + std::to_string(pred) + ", measured " +
                 std::to_string(loss - table->ref_loss));
  }
  if (step.report && table) {
    const std::string sig = resolve_signal(step.opts.signal, table.get());
    std::vector<std::vector<int>> groups;
    if (hw)
      for (auto& g : shared_groups(*hw, prepared, base))
        if (g.size() > 1) groups.push_back(g);
    (*step.report)["front"] = pareto_front(base, *table, sig, groups, hw.get(), 0.5);
    (*step.report)["sensitivity"] = sensitivity_matrix(*table, sig);
  }
  return summary;
}

PreparedPlan prepare_plan(const std::string& model_path, PlanDefaults d, const std::string& method,
                          const PlanData& data) {
  PreparedPlan p;
  p.original = load_model(model_path);
  p.prepared = p.original;
  fold_batchnorm(p.prepared);
  auto layers = find_layers(p.prepared);
  MIXQ_CHECK(!layers.empty(), ErrorKind::kUnsupported, model_path,
             ": no quantizable layers (Conv, ConvTranspose, Gemm, MatMul or Gather with constant weights)");
  InputShapes shapes;
  if (!data.calib.empty()) {
    p.calib = open_calibration(data.calib, p.prepared.inputs, data.preprocess.over(preprocess_from_metadata(p.original)),
                               data.sampling);
    MIXQ_CHECK(p.calib->size() > 0, ErrorKind::kInvalidData, "calibration set ", p.calib->describe(), " is empty");
    shapes = input_shapes_of(p.prepared, *p.calib);
  }
  for (const auto& spec : data.input_shapes) parse_input_shape(spec, p.prepared, shapes);
  {
    Executor ex(p.prepared);
    annotate_macs(ex, layers, shapes);
  }
  apply_method(method, d);
  p.plan = make_plan(p.prepared, layers, d);
  count_file_structure(p.prepared, p.plan);
  p.plan.model = model_path;
  p.plan.method = method;
  return p;
}

}  // namespace mixq
