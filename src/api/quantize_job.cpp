#include "api/quantize_job.h"

#include <chrono>

#include "api/allocate_step.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "dist/dist.h"
#include "exec/shapes.h"
#include "graph/fold_bn.h"
#include "exec/fold_constants.h"
#include "pack/from_qmodel.h"
#include "quant/multipoint.h"
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

CalibSampling calib_sampling_of(const QuantizeJob& job) {
  return CalibSampling{parse_calib_sampling(job.calib_sample), job.qopts.seed};
}

QuantizeResult run_quantize(const QuantizeJob& job) {
  auto t_start = std::chrono::steady_clock::now();
  QuantizeResult r;
  Graph original = load_model(job.model_path);
  Preprocess pp = job.preprocess.over(preprocess_from_metadata(original));
  r.prepared = original;
  r.bn_folded = fold_batchnorm(r.prepared, &r.folded);
  log::verbose("prepare: folded " + std::to_string(r.bn_folded) + " BatchNormalization nodes");

  auto layers = find_layers(r.prepared);
  MIXQ_CHECK(!layers.empty(), ErrorKind::kUnsupported, job.model_path,
             ": no quantizable layers (Conv, ConvTranspose, Gemm, MatMul or Gather with constant weights)");
  auto calib = open_calibration(job.calib, r.prepared.inputs, pp, calib_sampling_of(job));
  MIXQ_CHECK(calib->size() > 0, ErrorKind::kInvalidData, "calibration set ", calib->describe(), " is empty");
  {
    InputShapes shapes = input_shapes_of(r.prepared, *calib);
    for (const auto& spec : job.input_shapes) parse_input_shape(spec, r.prepared, shapes);
    Executor ex(r.prepared);
    annotate_macs(ex, layers, shapes);
  }
  auto t_search = std::chrono::steady_clock::now();
  PlanDefaults d = job.defaults;
  apply_method(job.method, d);
  MIXQ_CHECK(!d.act_sparq.enabled || d.abits == 8, ErrorKind::kInvalidArgument, "--act-scheme ",
             act_scheme_name(d.act_sparq), " cuts 4-bit windows from 8-bit activation codes; use --abits 8 (got ",
             d.abits, ")");
  r.plan = make_plan(r.prepared, layers, d);
  count_file_structure(r.prepared, r.plan);
  r.plan.model = job.model_path;
  r.plan.method = job.method;
  find_method(job.method);  // an unknown method or --iters fails before any work
  if (job.recon_iters != -1) ReconOptions().scale_iters(job.recon_iters);
  if (!job.plan_path.empty()) {
    r.plan = load_plan(job.plan_path, r.plan);
  } else {
    AllocateStep step;
    step.search = job.search;
    step.opts = job.search_opts;
    step.hw_path = job.hw_path;
    step.table_path = job.table_path;
    step.sens = job.sens;
    step.sens.calib_spec = calib_sampling_of(job).key(job.calib);
    step.sens.model_path = job.model_path;
    step.progress = job.qopts.progress;
    step.tune = &r.prepared;
    step.open_data = [&](const std::string& spec) { return open_dataset(spec, r.prepared.inputs, pp); };
    if (job.report_data) step.report = &r.report_data;
    r.allocation = run_allocation(step, r.prepared, r.plan, calib.get());
  }
  r.seconds_search = seconds_since(t_search);
  // MPI: the plan is made. AdaQuant's parallel mode spreads its units over the ranks too; for
  // everything else quantizing, evaluating and writing are rank 0's alone.
  const bool ranks_refine = job.method == "adaquant" && !job.recon.adaquant_sequential;
  if (!ranks_refine) dist::release_workers();

  auto t_quant = std::chrono::steady_clock::now();
  r.qmodel = quantize_model(r.prepared, r.plan, *calib, job.qopts);
  std::optional<QuantizedModel> before_finish;  // to report what the finishing steps changed
  std::optional<QuantizedModel> weights_only;   // --eval-weights-only
  {
    ReconOptions ro = job.recon;
    if (job.recon_iters != -1) ro.scale_iters(job.recon_iters);
    ro.seed = job.qopts.seed;
    ro.progress = job.qopts.progress;
    MethodContext ctx{r.prepared, r.plan, *calib, r.folded, ro, r.qmodel};
    if (job.eval_weights_only && !job.eval.empty()) {
      weights_only.emplace();
      ctx.after_rounding = &*weights_only;
    }
    const MethodRow& m = find_method(job.method);
    if (m.refine)
      for (const auto& L : r.plan.layers)
        MIXQ_CHECK(L.embed == EmbedScheme::kNone, ErrorKind::kUnsupported, "layer '", L.name, "' uses embed_scheme ",
                   embed_scheme_name(L.embed), ", but --method ", job.method, " reconstructs affine weight grids ",
                   "only; use a range method (minmax, mse, percentile) or --embed-scheme none");
    // Kernel-wise bits live in quantize_model's codes and parameters (quant/channel_bits.h); the
    // reconstruction methods and BN re-estimation recompute grids at one width per layer.
    for (const auto& L : r.plan.layers)
      MIXQ_CHECK(L.channel_bits.empty() || (!m.refine && !ro.bn_reestimate && job.search != "floorceil"),
                 ErrorKind::kUnsupported, "layer '", L.name, "' has per-channel bits (channel_bits), which --method ",
                 job.method, ro.bn_reestimate ? " with --bn-reestimate" : "",
                 " does not handle yet; use a range method (minmax, mse, percentile, kl)");
    // Methods without checkpoints stop their loops early on a signal; none of them writes a
    // partial result: the job ends here (core/interrupt.h).
    if (m.refine) m.refine(ctx);
    dist::release_workers();  // the rest is rank 0's (a no-op where the workers already left)
    throw_if_interrupted();
    record_extra_points(r.qmodel, r.plan);  // multipoint's points count in the plan's size and BOPs
    // Floor/ceil rounding works on whatever codes the method left (seed 004 starts from nearest).
    const bool floorceil = job.search == "floorceil";
    if ((floorceil || ro.bn_reestimate || ro.bias_tune) && !job.eval.empty()) before_finish = r.qmodel;
    if (floorceil) {
      FloorCeilResult fc = floorceil_rounding(ctx, job.floorceil);
      ctx.report["floorceil"] = fc.report;
      // A layer whose codes are now exactly floor or ceil says so in the plan (--plan-out); a
      // per-channel mix has no plan field and lives in the codes (QDQ, .mxq) only.
      for (auto& L : r.plan.layers) {
        auto it = fc.layer_rounding.find(L.name);
        if (it != fc.layer_rounding.end()) L.weight_scheme.rounding = it->second;
      }
    }
    throw_if_interrupted();
    if (ro.bn_reestimate) bn_reestimate(ctx);
    if (ro.bias_tune) bias_tune(ctx);
    throw_if_interrupted();
    compact_codes(r.qmodel);  // the methods' float codes (qmodel.h), before evaluation and export
    r.method_report = ctx.report;
  }
  r.seconds_quantize = seconds_since(t_quant) + r.seconds_search;

  if (!job.eval.empty()) {
    auto data = open_dataset(job.eval, original.inputs, pp);
    EvalOptions eo;
    eo.batch_size = job.eval_batch;
    eo.progress = job.qopts.progress;
    eo.keep_outputs = !job.save_outputs.empty();
    // One pass: the float model runs beside the quantized one on each batch, giving the float
    // top-1 (with labels) and every output's fidelity (without).
    std::optional<Executor> fex;
    if (job.eval_float) {
      fex.emplace(original);
      eo.reference = reference_executor(*fex);
      eo.reference_top1 = true;
    }
    std::unique_ptr<Executor> qex = simulation_executor(r.qmodel, &r.sparq);  // QDQ + SPARQ hooks
    eo.label = job.eval_float ? "eval float + quant" : "eval quant";
    r.quant_eval = evaluate(*qex, *data, eo);
    if (r.quant_eval->reference_score) {
      EvalResult f;
      f.samples = r.quant_eval->samples;
      f.has_top1 = true;
      f.correct = r.quant_eval->reference_score->correct;
      f.top1 = r.quant_eval->reference_score->top1;
      f.loss = r.quant_eval->reference_score->loss;
      r.float_eval = f;
    }
    // The intermediate models of the report: the same data and float reference, no outputs kept.
    eo.keep_outputs = false;
    eo.reference_top1 = false;
    auto evaluate_also = [&](const QuantizedModel& qm, const char* label) {
      eo.label = label;
      return evaluate(*simulation_executor(qm), *data, eo);
    };
    if (before_finish) r.quant_eval_before_finish = evaluate_also(*before_finish, "eval before finishing steps");
    if (weights_only && !weights_only->weights.empty())  // empty: the method has no rounding phase
      r.quant_eval_weights_only = evaluate_also(*weights_only, "eval weights only");
  }
  if (!job.save_outputs.empty() && r.quant_eval) {
    std::vector<std::string> names;
    for (const auto& o : original.outputs) names.push_back(o.name);
    save_outputs(job.save_outputs, names, *r.quant_eval);
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
                      {"act_scheme", act_scheme_name(job.defaults.act_sparq)},
                      {"sparq", sparq_json(r.sparq)},
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
                      {"seconds", r.seconds_quantize},
                      {"seconds_search", r.seconds_search},
                      {"seconds_total", r.seconds_total},
                      {"allocation", r.allocation}};
  if (calib_sampling_of(job).random) j["calib_sample"] = "random (seed " + std::to_string(job.qopts.seed) + ")";
  auto top1 = [](const std::optional<EvalResult>& e) {
    return e && e->has_top1 ? nlohmann::json(e->top1) : nlohmann::json(nullptr);
  };
  auto loss = [](const std::optional<EvalResult>& e) {
    return e && e->has_top1 ? nlohmann::json(e->loss) : nlohmann::json(nullptr);
  };
  j["top1_float"] = top1(r.float_eval);
  j["top1_quant"] = top1(r.quant_eval);
  j["top1_quant_before_finish"] = top1(r.quant_eval_before_finish);
  j["loss_float"] = loss(r.float_eval);
  j["loss_quant"] = loss(r.quant_eval);
  j["loss_quant_before_finish"] = loss(r.quant_eval_before_finish);
  if (job.eval_weights_only) {
    j["top1_weights_only"] = top1(r.quant_eval_weights_only);
    if (r.quant_eval_weights_only && !r.quant_eval_weights_only->fidelity.empty())
      j["fidelity_weights_only"] = fidelity_json(r.quant_eval_weights_only->fidelity);
  }
  // Fidelity to the float model on the eval inputs, every output (exec/fidelity.h), and the
  // metric the report leads with (--metric; auto: top-1 with labels, else SQNR).
  const bool fid = r.quant_eval && !r.quant_eval->fidelity.empty();
  j["fidelity"] = fid ? fidelity_json(r.quant_eval->fidelity) : nlohmann::json(nullptr);
  if (r.quant_eval_before_finish && !r.quant_eval_before_finish->fidelity.empty())
    j["fidelity_before_finish"] = fidelity_json(r.quant_eval_before_finish->fidelity);
  const LeadMetric lm = r.quant_eval ? lead_metric(job.metric, *r.quant_eval) : LeadMetric{resolve_metric(job.metric, false), {}};
  j["metric"] = metric_name(lm.metric);
  j["metric_value"] = lm.value ? nlohmann::json(*lm.value) : nlohmann::json(nullptr);
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& L : r.plan.layers) {
    nlohmann::json jl = {{"name", L.name}, {"op", L.op}, {"wbits", L.weight_scheme.bits},
                         {"abits", L.quantize_input ? nlohmann::json(L.input_scheme.bits) : nlohmann::json(nullptr)},
                         {"granularity", granularity_name(L.weight_scheme.granularity)},
                         {"params", L.params}, {"macs", L.macs}, {"pinned", L.pinned}};
    if (L.input_sparq.enabled) jl["act_scheme"] = act_scheme_name(L.input_sparq);
    if (L.weight_scheme.granularity == Granularity::kPerGroup) jl["group_size"] = L.weight_scheme.group_size;
    if (!L.channel_bits.empty()) jl["wbits_mean"] = mean_weight_bits(L);  // kernel-wise; wbits is the max
    layers.push_back(jl);
  }
  j["layers"] = layers;
  return j;
}

nlohmann::json quantize_report_view(const nlohmann::json& rep, const QuantizeResult& r) {
  nlohmann::json v = {{"title", "mixq quantize " + rep.value("model", std::string())}};
  nlohmann::json sum = nlohmann::json::object(), set = nlohmann::json::object();
  for (const char* k : {"metric", "metric_value", "top1_float", "top1_quant", "avg_wbits", "size_bytes", "size_ratio",
                        "float_bytes", "bops", "seconds_total"})
    if (rep.contains(k) && !rep[k].is_null()) sum[k] = rep[k];
  if (rep.contains("fidelity") && !rep["fidelity"].empty()) {
    const auto& f = rep["fidelity"][0];
    sum["sqnr_db (" + f.value("name", std::string("output 0")) + ")"] = f.value("sqnr_db", 0.0);
    sum["cosine"] = f.value("cosine", 0.0);
  }
  for (const char* k : {"model", "search", "method", "calib", "eval", "act_scheme", "bias_tune", "bn_reestimate"})
    if (rep.contains(k) && !rep[k].is_null()) set[k] = rep[k];
  if (rep.contains("search_params"))
    for (auto it = rep["search_params"].begin(); it != rep["search_params"].end(); ++it)
      if (!it.value().is_structured()) set["search." + it.key()] = it.value();
  v["summary"] = sum;
  v["settings"] = set;
  if (rep.contains("layers")) v["layers"] = rep["layers"];
  for (const char* k : {"front", "sensitivity"})
    if (r.report_data.contains(k)) v[k] = r.report_data[k];
  const nlohmann::json& a = r.allocation;
  v["chosen"] = {{"size_bytes", rep.value("size_bytes", 0.0)}, {"avg_wbits", rep.value("avg_wbits", 0.0)}};
  if (a.contains("predicted_dl")) {
    v["chosen"]["predicted_dl"] = a["predicted_dl"];
    v["predicted_vs_measured"] = {{"predicted_dl", a["predicted_dl"]}, {"measured_dl", a.value("measured_dl", 0.0)}};
  }
  return v;
}

}  // namespace mixq
