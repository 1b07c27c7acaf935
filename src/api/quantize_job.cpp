#include "api/quantize_job.h"

#include <chrono>

#include "api/allocate_step.h"
#include "core/log.h"
#include "exec/shapes.h"
#include "graph/fold_bn.h"
#include "onnx/import.h"
#include "pack/from_qmodel.h"
#include "quant/qdq.h"

namespace mixq {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

void apply_method(const std::string& method, PlanDefaults& d) {
  const MethodRow& m = find_method(method);
  d.weight_range = m.weight_range;
  d.input_range = m.input_range;
}

QuantizeResult run_quantize(const QuantizeJob& job) {
  auto t_start = std::chrono::steady_clock::now();
  QuantizeResult r;
  Graph original = load_onnx(job.model_path);
  Preprocess pp = job.preprocess ? *job.preprocess : preprocess_from_metadata(original);
  r.prepared = original;
  r.bn_folded = fold_batchnorm(r.prepared, &r.folded);
  log::verbose("prepare: folded " + std::to_string(r.bn_folded) + " BatchNormalization nodes");

  auto layers = find_layers(r.prepared);
  MIXQ_CHECK(!layers.empty(), ErrorKind::kUnsupported, job.model_path,
             ": no quantizable layers (Conv, ConvTranspose, Gemm, MatMul or Gather with constant weights)");
  {
    Executor shapes(r.prepared);
    annotate_macs(shapes, layers);
  }
  auto t_search = std::chrono::steady_clock::now();
  PlanDefaults d = job.defaults;
  apply_method(job.method, d);
  r.plan = make_plan(r.prepared, layers, d);
  count_file_structure(r.prepared, r.plan);
  r.plan.model = job.model_path;
  r.plan.method = job.method;
  find_method(job.method);  // an unknown method or --iters fails before any work
  if (job.recon_iters != -1) ReconOptions().scale_iters(job.recon_iters);
  auto calib = open_dataset(job.calib, r.prepared.inputs, pp);
  if (!job.plan_path.empty()) {
    r.plan = load_plan(job.plan_path, r.plan);
  } else {
    AllocateStep step;
    step.search = job.search;
    step.opts = job.search_opts;
    step.hw_path = job.hw_path;
    step.table_path = job.table_path;
    step.sens = job.sens;
    step.sens.calib_spec = job.calib;
    step.sens.model_path = job.model_path;
    step.progress = job.qopts.progress;
    r.allocation = run_allocation(step, r.prepared, r.plan, calib.get());
  }
  r.seconds_search = seconds_since(t_search);

  auto t_quant = std::chrono::steady_clock::now();
  r.qmodel = quantize_model(r.prepared, r.plan, *calib, job.qopts);
  std::optional<QuantizedModel> before_finish;  // to report what the finishing steps changed
  {
    ReconOptions ro = job.recon;
    if (job.recon_iters != -1) ro.scale_iters(job.recon_iters);
    ro.seed = job.qopts.seed;
    ro.progress = job.qopts.progress;
    MethodContext ctx{r.prepared, r.plan, *calib, r.folded, ro, r.qmodel};
    const MethodRow& m = find_method(job.method);
    if (m.refine) m.refine(ctx);
    if ((ro.bn_reestimate || ro.bias_tune) && !job.eval.empty()) before_finish = r.qmodel;
    if (ro.bn_reestimate) bn_reestimate(ctx);
    if (ro.bias_tune) bias_tune(ctx);
    r.method_report = ctx.report;
    r.interrupted = ctx.interrupted;
  }
  r.seconds_quantize = seconds_since(t_quant) + r.seconds_search;

  if (!job.eval.empty()) {
    auto data = open_dataset(job.eval, original.inputs, pp);
    EvalOptions eo;
    eo.batch_size = job.eval_batch;
    eo.progress = job.qopts.progress;
    if (job.eval_float) {
      Executor fex(original);
      eo.label = "eval float";
      r.float_eval = evaluate(fex, *data, eo);
    }
    Executor qex(qdq_graph(r.qmodel));
    eo.label = "eval quant";
    r.quant_eval = evaluate(qex, *data, eo);
    if (before_finish) {
      Executor bex(qdq_graph(*before_finish));
      eo.label = "eval before finishing steps";
      r.quant_eval_before_finish = evaluate(bex, *data, eo);
    }
  }
  r.seconds_total = seconds_since(t_start);
  return r;
}

nlohmann::json quantize_report(const QuantizeJob& job, const QuantizeResult& r) {
  const PlanCost& c = r.plan.cost;
  nlohmann::json j = {{"model", job.model_path},
                      {"calib", job.calib},
                      {"eval", job.eval},
                      {"method", job.method},
                      {"search", r.plan.search},
                      {"search_params", r.plan.search_params},
                      {"avg_wbits", c.avg_wbits},
                      {"size_bytes", c.size_bytes},
                      {"float_bytes", c.float_bytes},
                      {"size_ratio", c.size_ratio},
                      {"bops", c.bops},
                      {"bn_folded", r.bn_folded},
                      {"bn_reestimate", job.recon.bn_reestimate},
                      {"bias_tune", job.recon.bias_tune},
                      {"method_report", r.method_report},
                      {"interrupted", r.interrupted},
                      {"seconds", r.seconds_quantize},
                      {"seconds_search", r.seconds_search},
                      {"seconds_total", r.seconds_total},
                      {"allocation", r.allocation}};
  j["top1_float"] = r.float_eval ? nlohmann::json(r.float_eval->top1) : nlohmann::json(nullptr);
  j["top1_quant"] = r.quant_eval ? nlohmann::json(r.quant_eval->top1) : nlohmann::json(nullptr);
  j["top1_quant_before_finish"] =
      r.quant_eval_before_finish ? nlohmann::json(r.quant_eval_before_finish->top1) : nlohmann::json(nullptr);
  j["loss_float"] = r.float_eval ? nlohmann::json(r.float_eval->loss) : nlohmann::json(nullptr);
  j["loss_quant"] = r.quant_eval ? nlohmann::json(r.quant_eval->loss) : nlohmann::json(nullptr);
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& L : r.plan.layers) {
    nlohmann::json jl = {{"name", L.name}, {"op", L.op}, {"wbits", L.weight_scheme.bits},
                         {"abits", L.quantize_input ? nlohmann::json(L.input_scheme.bits) : nlohmann::json(nullptr)},
                         {"granularity", granularity_name(L.weight_scheme.granularity)},
                         {"params", L.params}, {"macs", L.macs}, {"pinned", L.pinned}};
    if (L.weight_scheme.granularity == Granularity::kPerGroup) jl["group_size"] = L.weight_scheme.group_size;
    layers.push_back(jl);
  }
  j["layers"] = layers;
  return j;
}

}  // namespace mixq
