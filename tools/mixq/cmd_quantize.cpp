// mixq quantize MODEL: plan (uniform / MixQuant / a user plan), quantize with a range method,
// simulate and evaluate, export QDQ ONNX + plan + report.
#include <cstdio>

#include "api/quantize_job.h"
#include "api/report_html.h"
#include "api/write_packed.h"
#include "common.h"
#include "core/atomic_file.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "data/dataset.h"
#include "exec/fidelity.h"
#include "onnx/export.h"
#include "quant/methods/lapq_search.h"
#include "quant/qdq.h"

namespace mixq::cli {

// Options shared by quantize and demo: bits, granularity, method, search.
void add_quant_options(CLI::App& sub, QuantizeJob& job) {
  auto& d = job.defaults;
  sub.add_option("--calib", job.calib, "Calibration data (training set only)")->capture_default_str();
  sub.add_option("--wbits", job.search_opts.wbits, "Weight bits for --search uniform (2-8, 16)")
      ->capture_default_str();
  sub.add_option("--abits", d.abits, "Activation bits (layer inputs)")->capture_default_str();
  sub.add_option_function<std::string>(
         "--act-scheme", [&d](const std::string& v) { d.act_sparq = parse_act_scheme(v); },
         "Activation scheme on the 8-bit layer inputs: uniform (default) or sparq:5opt|3opt|2opt[,v] (SPARQ: a "
         "4-bit window per value at its leading one; ',v' adds vSPARQ pairs; first/last layer stay plain). "
         "Simulated only: no -o/--pack (docs/sparq.md)")
      ->capture_default_str();
  sub.add_option("--method", job.method,
                 "Quantization method: minmax, mse, percentile, kl (ranges only); adaround, brecq, adaquant "
                 "(reconstruction on the calibration data); lapq, lapq-init (clipping for the calibration loss); "
                 "multipoint (extra low-bit points per output channel)")
      ->check(CLI::IsMember(method_names()))->capture_default_str();
  auto& ro = job.recon;
  sub.add_option("--rec-loss", ro.rec_loss, "AdaRound/BRECQ reconstruction loss: mse or fisher")
      ->check(CLI::IsMember({"mse", "fisher"}))->capture_default_str();
  sub.add_option("--iters", job.recon_iters,
                 "Rounding iterations per unit (default 20000); activation-step, AdaQuant and bias-tuning "
                 "iterations scale with it");
  sub.add_flag("--no-act-learning", [&ro](int64_t) { ro.learn_act = false; },
               "AdaRound/BRECQ: keep calibrated activation steps (skip LSQ step learning)");
  sub.add_option_function<std::string>("--adaquant-mode", [&ro](const std::string& m) { ro.adaquant_sequential = m == "seq"; },
                                       "AdaQuant inputs: seq (from the model quantized so far, default) or parallel "
                                       "(from the float model)")
      ->check(CLI::IsMember({"seq", "parallel"}));
  sub.add_option("--lapq-samples", ro.lapq_samples, "LAPQ: calibration samples its loss runs on (the first ones)")
      ->capture_default_str();
  sub.add_option("--lapq-sweeps", ro.lapq_sweeps,
                 "LAPQ: joint-search sweeps, each 4 (n + 1) loss evaluations for n clipping ranges")
      ->capture_default_str();
  sub.add_option("--lapq-evals", ro.lapq_evals, "LAPQ: total joint-search evaluations instead of --lapq-sweeps");
  sub.add_option("--lapq-optimizer", ro.lapq_optimizer, "LAPQ: joint search by NLopt praxis (Powell/Brent) or bobyqa")
      ->check(CLI::IsMember(joint_optimizer_names()))->capture_default_str();
  sub.add_flag("--lapq-bias-corr", ro.lapq_bias_corr,
               "LAPQ: per-channel bias correction after the joint search (kept only if it lowers the loss)");
  sub.add_option("--mp-extra", ro.mp_extra,
                 "Multipoint: extra points as a fraction of the output channels (each costs one channel's weights at "
                 "the layer's bits plus a scale)")
      ->capture_default_str();
  sub.add_option("--mp-threshold", ro.mp_threshold,
                 "Multipoint: no point for a channel whose output error, relative to the layer's mean output "
                 "energy per channel, is at or below this")
      ->capture_default_str();
  sub.add_option("--mp-samples", ro.mp_samples, "Multipoint: calibration samples the output errors run on")
      ->capture_default_str();
  sub.add_option("--mp-rounds", ro.mp_rounds, "Multipoint: rounds the budget is handed out in")->capture_default_str();
  sub.add_option("--mp-max-points", ro.mp_max_points, "Multipoint: extra points per channel at most")
      ->capture_default_str();
  sub.add_flag("--mp-grouped", ro.mp_grouped,
               "Multipoint: also give grouped/depthwise convolutions points (their packed form leaves the runtime's "
               "depthwise kernel: much slower)");
  sub.add_flag("--bn-reestimate", ro.bn_reestimate,
               "Finish with BatchNorm re-estimation: statistics recomputed through the quantized model, refolded");
  sub.add_flag("--bias-tune", ro.bias_tune, "Finish by tuning the biases to the float logits (KL)");
  sub.add_option("--recon-precision", ro.precision,
                 "AdaRound/BRECQ: convolution math inside the optimisation loops: auto (bf16 on CPUs with "
                 "AMX / AVX-512 BF16, else fp32), fp32 or bf16 (~1.3x faster loops; accuracy compared in "
                 "BENCHMARKS.md; the rounding variables, steps and the written model stay float32)")
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}))->capture_default_str();
  sub.add_option("--cache-mb", ro.cache_mb, "Cached reconstruction data kept in memory; the rest spills to a file")
      ->capture_default_str();
  sub.add_option("--cache-dir", ro.cache_dir, "Directory for spilled cache files (default $TMPDIR or /tmp)");
  sub.add_option("--granularity", [&d](const CLI::results_t& v) { d.granularity = parse_granularity(v[0]); return true; },
                 "Weight granularity: per_tensor, per_channel (default), per_group");
  sub.add_option("--group-size", d.group_size, "Elements per group for per_group");
  sub.add_flag("--symmetric-weights", d.wsymmetric, "Symmetric (signed) weight grid instead of asymmetric");
  sub.add_option("--rounding", [&d](const CLI::results_t& v) { d.rounding = parse_rounding(v[0]); return true; },
                 "Weight rounding: nearest (default), floor, ceil, stochastic");
  sub.add_option("--pin-bits", d.pin_bits,
                 "Bits of the first and last layer (0: treat them like the rest); embedding tables are never pinned")
      ->capture_default_str();
  {
    std::string help = "Scheme of every embedding table (Gather on a constant table), at the bits the search gives it:";
    for (const auto& r : embed_scheme_rows()) help += std::string(" ") + r.name + " (" + r.what + ");";
    sub.add_option_function<std::string>(
           "--embed-scheme", [&d](const std::string& v) { d.embed_scheme = parse_embed_scheme(v); },
           help + " exported exactly to QDQ (-o) and .mxq (--pack) (docs/embeddings.md)");
  }
  sub.add_option("--search", job.search,
                 "Bit allocation: uniform, mixquant, ip, pareto, genetic, hago, fracbits (learned fractional bits under a "
                 "size or BOPs budget), floorceil (--floorceil-base bits, "
                 "inputs at weight bits, then floor/ceil weight rounding for a lower calibration loss)")
      ->capture_default_str();
  auto& fc = job.floorceil;
  sub.add_option("--floorceil-base", job.search_opts.floorceil_base,
                 "floorceil: the allocator that sets the weight bits (uniform at --wbits, ip, mixquant, ...)")
      ->capture_default_str();
  sub.add_option("--floorceil-granularity", fc.granularity,
                 "floorceil: choose floor or ceil per layer, or per output channel")
      ->check(CLI::IsMember({"layer", "channel"}))->capture_default_str();
  sub.add_option("--floorceil-samples", fc.samples, "floorceil: calibration samples the loss runs on (the first ones)")
      ->capture_default_str();
  sub.add_option("--floorceil-evals", fc.max_evals, "floorceil: most candidate moves measured")->capture_default_str();
  sub.add_option("--floorceil-rounds", fc.rounds,
                 "floorceil: gradient + acceptance passes (each a fresh backward pass)")->capture_default_str();
  sub.add_option("--floorceil-halvings", fc.halvings,
                 "floorceil, channel granularity: retries per layer with half the channels")->capture_default_str();
  auto& so = job.search_opts;
  sub.add_option("--fracbits-iters", so.fracbits_iters, "fracbits: Adam steps on the bit-widths")->capture_default_str();
  sub.add_option("--fracbits-lr", so.fracbits_lr, "fracbits: learning rate of the bit-widths")->capture_default_str();
  sub.add_option("--fracbits-kappa", so.fracbits_kappa, "fracbits: weight of the cost term |cost / budget - 1|")
      ->capture_default_str();
  sub.add_option("--fracbits-samples", so.fracbits_samples, "fracbits: calibration samples it learns on (the first ones)")
      ->capture_default_str();
  sub.add_option("--fracbits-batch", so.fracbits_batch, "fracbits: samples per step")->capture_default_str();
  sub.add_option("--fracbits-granularity", so.fracbits_granularity,
                 "fracbits: layer (one weight bit-width per layer) or channel (kernel-wise: one per output channel, "
                 "written as channel_bits in the plan; activations stay per layer)")
      ->check(CLI::IsMember({"layer", "channel"}))
      ->capture_default_str();
  sub.add_option("--train-data", so.fracbits_train_data,
                 "fracbits training mode: learn weights and bit-widths together on this labelled dataset (e.g. "
                 "fmnist:train); bits frozen after 80% of the steps");
  sub.add_option("--epochs", so.fracbits_epochs, "fracbits training mode: passes over --train-data")->capture_default_str();
  sub.add_option("--fracbits-weight-lr", so.fracbits_weight_lr, "fracbits training mode: Adam learning rate of the weights")
      ->capture_default_str();
  sub.add_option("--qem", job.search_opts.qem, "MixQuant quantization error multiplier (>= 1)");
  sub.add_option("--qem-ref-bits", job.search_opts.qem_ref_bits, "MixQuant reference bit-width")->capture_default_str();
  sub.add_option("--qem-ref", job.search_opts.qem_ref,
                 "MixQuant threshold reference: 'layer' (each layer's own error at --qem-ref-bits) or 'model' "
                 "(the model's mean error)")->capture_default_str();
  sub.add_option("--budget-bits", job.search_opts.budget_avg_wbits, "Target average weight bits (MixQuant: finds the QEM)");
  sub.add_option("--seed", job.qopts.seed, "Seed (stochastic rounding, reconstruction batches)")->capture_default_str();
  sub.add_option_function<std::string>("--metric", [&job](const std::string& m) { job.metric = parse_metric(m); },
                                       "What reports lead with: auto (top-1 with labels and class scores, else SQNR "
                                       "vs float), top1, sqnr, cos, kl, maxabs; every metric is in --json either way");
  add_data_options(sub, job.preprocess, &job.input_shapes);
  add_budget_options(sub, job);
  add_resume_options(sub, job);
}

RunFn setup_quantize(CLI::App& sub) {
  struct Opts {
    GlobalOptions g;
    QuantizeJob job;
    std::string out, plan_out, report, report_html, pack;
  };
  auto o = std::make_shared<Opts>();
  o->job.defaults.wbits = 4;
  sub.add_option("model", o->job.model_path, "Float ONNX model")->required();
  add_quant_options(sub, o->job);
  sub.add_option("--plan", o->job.plan_path, "Apply this QuantPlan (JSON) instead of searching");
  sub.add_option("--eval", o->job.eval,
                 "Evaluate float and quantized model on this dataset (e.g. fmnist:test): top-1 where it has labels "
                 "and the model gives class scores; fidelity of every output to the float model always");
  sub.add_option("--save-outputs", o->job.save_outputs,
                 "With --eval: write every output of the quantized model (all samples) to this .npz");
  sub.add_flag("--no-float-eval", [o](int64_t) { o->job.eval_float = false; },
               "With --eval: skip evaluating the float model");
  sub.add_option("-o,--output", o->out, "Write the QDQ ONNX model here");
  sub.add_option("--plan-out", o->plan_out, "Write the QuantPlan (JSON) here");
  sub.add_option("--report", o->report, "Write the JSON report here");
  sub.add_option("--report-html", o->report_html,
                 "Write a self-contained HTML report here: the front with the chosen plan (table-driven searches), "
                 "bits per layer, the sensitivity heatmap, predicted vs measured loss, settings");
  sub.add_option("--pack", o->pack, "Also write the packed model (.mxq) for `mixq run` / `mixq bench`");
  add_global_options(sub, o->g);
  return [o]() {
    apply_global_options(o->g);
    QuantizeJob& job = o->job;
    job.defaults.wbits = job.search_opts.wbits;
    job.qopts.progress = !o->g.quiet;
    job.report_data = !o->report_html.empty();
    for (const std::string* p : {&o->out, &o->plan_out, &o->report, &o->report_html, &o->pack, &o->job.save_outputs})
      MIXQ_CHECK(p->empty() || !same_file(*p, job.model_path), ErrorKind::kInvalidArgument,
                 "refusing to overwrite the input model '", job.model_path, "' with ", *p);
    // SPARQ has no QDQ or packed form: fail before the work, not after it.
    MIXQ_CHECK(!job.defaults.act_sparq.enabled || (o->out.empty() && o->pack.empty()), ErrorKind::kUnsupported,
               "--act-scheme ", act_scheme_name(job.defaults.act_sparq), " cannot be written with ",
               o->out.empty() ? "--pack" : "-o", ": QDQ ONNX and the packed runtime cannot express SPARQ's per-value ",
               "windows (the file would run plain 8-bit activations); SPARQ is simulated only (use --eval)");
    prepare_checkpoint(job, {&o->out, &o->pack, &o->plan_out, &o->report, &o->report_html, &o->job.save_outputs});
    QuantizeResult r = run_quantize(job);
    throw_if_interrupted();  // the last safe point: after it every output is written
    if (!o->out.empty()) {
      check_no_sparq(r.qmodel, "QDQ ONNX export (-o)");  // a --plan can ask for SPARQ too
      save_onnx(qdq_graph(r.qmodel), o->out);
    }
    if (!o->plan_out.empty()) save_plan(r.plan, o->plan_out);
    nlohmann::json rep = quantize_report(job, r);
    if (!o->pack.empty()) rep["pack"] = write_packed(r, o->pack);
    if (!o->report.empty()) write_file_atomic(o->report, rep.dump(2) + "\n");
    if (!o->report_html.empty()) write_file_atomic(o->report_html, render_report_html(quantize_report_view(rep, r)));
    finish_checkpoint(job);
    if (o->g.json) {
      print_json(rep);
      return 0;
    }
    const PlanCost& c = r.plan.cost;
    std::printf("%s: %s search, %s ranges, %zu layers, avg %.2f weight bits\n", job.model_path.c_str(),
                r.plan.search.c_str(), job.method.c_str(), r.plan.layers.size(), c.avg_wbits);
    std::printf("size %lld bytes (%.1f%% of float %lld), %.3f GBOPs, quantized in %.2f s\n", (long long)c.size_bytes,
                100 * c.size_ratio, (long long)c.float_bytes, c.gbops(), r.seconds_quantize);
    if (r.float_eval && r.float_eval->has_top1) std::printf("top-1 float %.2f%%\n", r.float_eval->top1);
    if (r.quant_eval && r.quant_eval->has_top1) std::printf("top-1 quant %.2f%%\n", r.quant_eval->top1);
    if (!r.sparq.per_tensor.empty()) {
      const SparqStats t = r.sparq.total();
      const nlohmann::json& sj = rep["sparq"];
      std::printf("SPARQ %s on %zu tensors: %.1f%% zeros, %.1f%% of pairs kept 8 bits, windows",
                  job.defaults.act_sparq.enabled ? act_scheme_name(job.defaults.act_sparq).c_str() : "(plan)",
                  r.sparq.per_tensor.size(), 100 * sj["frac_zeros"].get<double>(), 100 * t.frac_pairs_8bit());
      for (const auto& [w, f] : sj["window_share"].items()) std::printf(" %s %.1f%%", w.c_str(), 100 * f.get<double>());
      std::printf("\n");
    }
    if (r.quant_eval && !r.quant_eval->fidelity.empty())
      std::printf("fidelity to the float model on %lld samples:\n%s", (long long)r.quant_eval->samples,
                  fidelity_text(r.quant_eval->fidelity).c_str());
    if (!job.save_outputs.empty() && r.quant_eval) std::printf("wrote %s\n", job.save_outputs.c_str());
    for (const std::string* p : {&o->out, &o->plan_out, &o->report, &o->report_html})
      if (!p->empty()) std::printf("wrote %s\n", p->c_str());
    if (!o->pack.empty()) print_pack_summary(rep["pack"]);
    return 0;
  };
}

}  // namespace mixq::cli
