// The option table of api/job_options.h (moved from the CLI so that the Python module shares it).
#include "api/job_options.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <sstream>

#include "api/eval_job.h"
#include "api/pack_job.h"
#include "api/pareto_job.h"
#include "api/quantize_job.h"
#include "api/quantize_outputs.h"
#include "api/run_job.h"
#include "data/dataset.h"
#include "exec/fidelity.h"
#include "mixq/error.h"
#include "quant/act_placement.h"
#include "quant/methods/lapq_search.h"

namespace mixq {

namespace {

// "4,8" -> {4, 8}; anything else is a usage error naming the option.
std::vector<int64_t> split_list(const std::string& v, const char* option) {
  std::vector<int64_t> out;
  std::stringstream ss(v);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      out.push_back(std::stoll(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw CLI::ValidationError(option, "'" + v + "' is not a comma-separated list of integers");
    }
  }
  return out;
}

}  // namespace

void add_budget_options(CLI::App& sub, QuantizeJob& job) {
  auto& o = job.search_opts;
  sub.add_option("--budget-bytes", o.budget.bytes, "Size budget in bytes (every stored bit, as size_bytes)");
  sub.add_option("--budget-bops", o.budget.bops, "BOPs budget per sample (MACs x weight bits x activation bits)");
  sub.add_option("--budget-latency-ms", o.budget.latency_ms, "Latency budget (needs --latency-table)");
  sub.add_option("--latency-table", o.latency_table, "Per-layer latency table JSON (docs/hwspec.md)");
  sub.add_option("--max-drop", o.budget.max_drop,
                 "ip/pareto/genetic: smallest plan whose predicted signal increase is at most this (dl: the "
                 "calibration loss increase; without labels or class scores dl is the relative output noise vs "
                 "the float model, so 0.01 ~ 20 dB SQNR); hago: allowed calibration top-1 drop in points");
  sub.add_option("--signal", o.signal,
                 "Sensitivity signal for ip/pareto/genetic: auto (kl with labelled class scores, else noise), dl, kl, "
                 "noise, mse, dacc, fisher, hessian")
      ->check(CLI::IsMember({"auto", "dl", "kl", "noise", "sqnr", "mse", "dacc", "fisher", "hessian"}))->capture_default_str();
  sub.add_option("--hw", job.hw_path, "Hardware spec JSON: allowed bits per op, shared groups (docs/hwspec.md)");
  sub.add_option("--sens-samples", job.sens.samples, "Calibration samples for the sensitivity table")
      ->capture_default_str();
  sub.add_option_function<std::string>(
      "--sens-bits",
      [&job](const std::string& v) {
        job.sens.bits.clear();
        for (const auto& x : split_list(v, "--sens-bits")) job.sens.bits.push_back(static_cast<int>(x));
      },
      "Sensitivity table: candidate weight bits, comma-separated (default 2,3,4,5,6,7,8)");
  sub.add_option("--sens-cache", job.sens.cache_path, "Sensitivity table cache file (resumes a killed run)");
  sub.add_option_function<std::string>(
         "--act-candidates",
         [&job](const std::string& v) {
           job.sens.act_bits.clear();
           if (v != "none")
             for (const auto& x : split_list(v, "--act-candidates")) job.sens.act_bits.push_back(static_cast<int>(x));
         },
         "Sensitivity table: activation bits measured per tensor below --abits, comma-separated, or 'none' "
         "(used by BOPs budgets; default 4,8)");
  sub.add_option_function<std::string>(
      "--group-candidates", [&job](const std::string& v) { job.sens.group_sizes = split_list(v, "--group-candidates"); },
      "Sensitivity table: per-group weight granularities measured at every candidate bit-width, comma-separated "
      "(e.g. 32,128; allocators pick them where they pay for their scales; default none)");
  sub.add_flag("--curvature", job.sens.curvature,
               "Sensitivity table: also the fisher and hessian signals (autograd pass; slow on convnets)");
  sub.add_option("--table", job.table_path, "Allocate from this sensitivity table instead of measuring");
  sub.add_flag("--no-measure", [&o](int64_t) { o.measure = false; }, "pareto: trust the prediction, skip re-measuring");
  sub.add_option("--additivity-tol", o.additivity_tol,
                 "ip/genetic: re-measure in-block layer pairs and re-solve when the plan's measured signal differs "
                 "from the predicted sum by more than this fraction (negative: no check)")
      ->capture_default_str();
  sub.add_option("--repair-rounds", o.repair_rounds, "ip/genetic: re-solves of the additivity repair (0: check only)")
      ->capture_default_str()
      ->check(CLI::Range(0, 20));
}


void add_quant_options(CLI::App& sub, QuantizeJob& job) {
  auto& d = job.defaults;
  sub.add_option("--calib", job.calib, "Calibration data (training set only)")->capture_default_str();
  sub.add_option("--calib-sample", job.calib_sample,
                 "Which calibration samples: first (the first N of the spec) or random (N drawn with --seed from the "
                 "whole fmnist split; other data in a seeded random order)")
      ->check(CLI::IsMember({"first", "random"}))->capture_default_str();
  sub.add_option("--wbits", job.search_opts.wbits, "Weight bits for --search uniform (2-8, 16)")
      ->capture_default_str();
  sub.add_option("--abits", d.abits, "Activation bits (layer inputs)")->capture_default_str();
  sub.add_option_function<std::string>(
         "--act-placement", [&d](const std::string& v) { d.act_placement = parse_act_placement(v); },
         "Where activation quantizers sit: inputs (of quantized layers; residual paths float; default) or outputs "
         "(BRECQ's reference: every reader quantized, the first layer's output at its pinned bits)")
      ->default_str("inputs");
  sub.add_flag("--pin-first-output", d.pin_first_output,
               "The layers reading the pinned first layer's output also get the pinned bits (as BRECQ's reference "
               "code quantizes the first layer's output at 8 bits); implied by --act-placement outputs");
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
  sub.add_flag("--recon-pinned", ro.recon_pinned,
               "AdaRound/BRECQ: also reconstruct the pinned first/last layers (rounding and activation step) at "
               "their bits, layer by layer, as BRECQ's reference code does");
  sub.add_option("--act-loss-p", ro.act_loss_p,
                 "AdaRound/BRECQ: the activation-step phase minimises |error|^p (BRECQ's reference code: 2.4)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub.add_option("--act-init-samples", ro.act_init_samples,
                 "AdaRound/BRECQ: activation ranges before step learning from the first N calibration samples "
                 "(0: all; BRECQ's reference code: 64)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub.add_option_function<std::string>("--act-init", [&ro](const std::string& m) { ro.act_init_sequential = m == "sequential"; },
                                       "AdaRound/BRECQ activation ranges before step learning: calibrated (all "
                                       "calibration samples, float activations upstream; default) or sequential (the "
                                       "first --act-init-samples, 64 if 0, through the quantizers before each tensor, "
                                       "as BRECQ's reference code does)")
      ->check(CLI::IsMember({"calibrated", "sequential"}));
  sub.add_option_function<std::string>("--act-inputs", [&ro](const std::string& m) { ro.act_float_inputs = m == "float"; },
                                       "AdaRound/BRECQ activation-step phase: each unit's inputs from the model "
                                       "quantized so far (quantized, default) or from the float model (float, as "
                                       "BRECQ's reference code does)")
      ->check(CLI::IsMember({"quantized", "float"}));
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
                 "AMX-BF16, else fp32: with AVX-512 BF16 alone bf16 measured slower), fp32 or bf16 (~1.3x faster loops; accuracy compared in "
                 "BENCHMARKS.md; the rounding variables, steps and the written model stay float32)")
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}))->capture_default_str();
  sub.add_option("--cache-mb", ro.cache_mb, "Cached reconstruction data kept in memory; the rest spills to a file")
      ->capture_default_str();
  sub.add_option_function<std::string>(
      "--cache-dir", [&job](const std::string& dir) { job.recon.cache_dir = job.sens.spill_dir = dir; },
      "Directory for spilled cache files: reconstruction caches and the sensitivity probe's (default $TMPDIR or /tmp)");
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

void add_resume_options(CLI::App& sub, QuantizeJob& job) {
  sub.add_option("--checkpoint", job.recon.checkpoint,
                 "adaround / brecq / adaquant: progress file rewritten after every unit, so an interrupted run "
                 "(Ctrl-C, SIGTERM, a kill) resumes there (default: the first output file + '.ckpt'; removed once "
                 "the outputs are written)");
  sub.add_flag_function(
      "--resume", [&job](int64_t) { job.recon.resume = job.sens.resume = true; },
      "Continue from an existing --checkpoint / --sens-cache / --table-out file (the default)");
  sub.add_flag_function(
      "--no-resume", [&job](int64_t) { job.recon.resume = job.sens.resume = false; },
      "Start over: ignore (and overwrite) an existing --checkpoint / --sens-cache / --table-out file");
  sub.add_option_function<int64_t>(
         "--max-memory",
         [&job](int64_t mb) {
           job.recon.cache_mb = mb;          // reconstruction caches: the rest spills to --cache-dir
           job.sens.max_memory_mb = mb;      // the probe's cached activations spill past it
         },
         "MB of cached activations held in memory, the rest spilled to a file in --cache-dir: reconstruction "
         "caches (as --cache-mb) and the sensitivity probe's cached activations (its input samples stay in "
         "memory: refused when they alone pass it)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 40));
}

void add_data_options(CLI::App& sub, PreprocessOverride& pre, std::vector<std::string>* input_shapes) {
  sub.add_option("--scale", pre.scale, "Pixel scale for uint8 images (fmnist, uint8 arrays) (default: model metadata or 1/255)");
  sub.add_option_function<std::string>(
      "--mean", [&pre](const std::string& v) { pre.mean = parse_float_list(v, "--mean"); },
      "Input normalization mean for uint8 images: one value or one per channel, e.g. 0.485,0.456,0.406 "
      "(default: model metadata, else 0)");
  sub.add_option_function<std::string>(
      "--std", [&pre](const std::string& v) { pre.std = parse_float_list(v, "--std"); },
      "Input normalization std for uint8 images: one value or one per channel, e.g. 0.229,0.224,0.225 "
      "(default: model metadata, else 1)");
  if (input_shapes)
    sub.add_option("--input-shape", *input_shapes,
                   "Concrete shape of an input with dynamic axes, NAME:d0,d1,... (repeat per input; default: "
                   "the first sample of the data)");
}

void add_quantize_output_options(CLI::App& sub, QuantizeJob& job, QuantizeOutputs& out) {
  sub.add_option("--plan", job.plan_path, "Apply this QuantPlan (JSON) instead of searching");
  sub.add_option("--eval", job.eval,
                 "Evaluate float and quantized model on this dataset (e.g. fmnist:test): top-1 where it has labels "
                 "and the model gives class scores; fidelity of every output to the float model always");
  sub.add_option("--save-outputs", job.save_outputs,
                 "With --eval: write every output of the quantized model (all samples) to this .npz");
  sub.add_flag("--no-float-eval", [&job](int64_t) { job.eval_float = false; },
               "With --eval: skip evaluating the float model");
  sub.add_flag("--eval-weights-only", job.eval_weights_only,
               "With --eval and --method adaround/brecq: also evaluate the model after the rounding phase, "
               "activations float (report: top1_weights_only)");
  sub.add_option("-o,--output", out.onnx, "Write the QDQ ONNX model here");
  sub.add_option("--plan-out", out.plan, "Write the QuantPlan (JSON) here");
  sub.add_option("--report", out.report, "Write the JSON report here");
  sub.add_option("--report-html", out.report_html,
                 "Write a self-contained HTML report here: the front with the chosen plan (table-driven searches), "
                 "bits per layer, the sensitivity heatmap, predicted vs measured loss, settings");
  sub.add_option("--pack", out.pack, "Also write the packed model (.mxq) for `mixq run` / `mixq bench`");
}

void add_pareto_output_options(CLI::App& sub, ParetoOutputs& out) {
  sub.add_option("-o,--output", out.front, "Write the front (JSON) here");
  sub.add_option("--report-html", out.report_html,
                 "Write a self-contained HTML report here: the front and the sensitivity heatmap");
  sub.add_option("--table-out", out.table, "Write (and resume) the sensitivity table here")->required();
  sub.add_option("--grid-step", out.grid_step, "Average-bits step of the integer-program points")->capture_default_str();
}

void add_eval_options(CLI::App& sub, EvalJob& job) {
  sub.add_option("model", job.model, "ONNX model file")->required();
  sub.add_option("-d,--data", job.data, "Dataset: fmnist:train|test[:N], FILE.npz, DIR of .npy, FILE.npy, .pb")
      ->capture_default_str();
  sub.add_option("-b,--batch", job.batch,
                 "Batch size (0: automatic: up to 250, fewer where one batch's largest activation would pass 32 MB)")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
  add_data_options(sub, job.pre, nullptr);
  sub.add_option("--reference", job.reference,
                 "Compare every output with a reference: a (float) .onnx model run on the same inputs, or an .npz of "
                 "stored outputs named after the model's outputs (e.g. ONNX Runtime's)");
  sub.add_option("--metric", job.metric,
                 "What the summary leads with: auto (top-1 with labels, else SQNR), top1, sqnr, cos, kl, maxabs")
      ->capture_default_str();
  sub.add_option("--save-outputs", job.save_outputs,
                 "Write every output (all samples) to this .npz, named after the outputs");
  sub.add_option("--save-logits", job.save_logits, "Write the first output (all samples) to this .npy file");
}

void add_pack_options(CLI::App& sub, QuantizeJob& job, PackOutputs& out) {
  job.defaults.wbits = 4;
  job.eval_float = false;
  sub.add_option("model", job.model_path, "Float ONNX model")->required();
  add_quant_options(sub, job);
  sub.add_option("--plan", job.plan_path, "QuantPlan (JSON) to apply (else --wbits/--abits/--search as quantize)");
  sub.add_option("--eval", job.eval, "Also evaluate the fake-quant simulation on this dataset");
  sub.add_option("-o,--output", out.path, "The .mxq file to write")->required();
  sub.add_flag("--float", out.float_model,
               "Pack the prepared float model (BatchNorm folded, nothing quantized): the runtime's fp32 baseline");
}

void add_run_options(CLI::App& sub, RunJob& job) {
  sub.add_option("model", job.model, "Packed model (.mxq)")->required();
  sub.add_option("-d,--data", job.data, "Dataset (as for eval)")->capture_default_str();
  sub.add_option("-b,--batch", job.batch, "Batch size")->check(CLI::Range(1, 1 << 20))->capture_default_str();
  sub.add_option("--isa", job.isa, "Kernel path: auto (MIXQ_ISA or cpuid), ref, avx2, avx512")->capture_default_str();
  sub.add_option("--reference", job.reference,
                 "Compare every output with the float .onnx model run on the same inputs, or with an .npz of stored "
                 "outputs named after the model's outputs");
  sub.add_option("--metric", job.metric, "Summary metric: auto, top1, sqnr, cos, kl, maxabs")->capture_default_str();
  sub.add_option("--save-outputs", job.save_outputs, "Write every output (all samples) to this .npz");
  add_data_options(sub, job.pre, nullptr);
}

void add_plan_options(CLI::App& sub, QuantizeJob& job, std::string& model) {
  job.search = "ip";  // the table-driven allocator by default
  sub.add_option("--from-table", job.table_path, "Sensitivity table (from `mixq pareto --table-out`)")->required();
  sub.add_option("--model", model, "The model (default: the path recorded in the table)");
  sub.add_option("--search", job.search, "Allocator: ip, pareto, genetic")
      ->check(CLI::IsMember({"ip", "pareto", "genetic"}))->capture_default_str();
  sub.add_option("--budget-bits", job.search_opts.budget_avg_wbits, "Target average weight bits");
  sub.add_option("--seed", job.search_opts.seed, "Seed (genetic)")->capture_default_str();
  add_budget_options(sub, job);
}

void finish_quantize_options(QuantizeJob& job) { job.defaults.wbits = job.search_opts.wbits; }

void parse_options(CLI::App& app, std::vector<std::string> args) {
  std::reverse(args.begin(), args.end());  // CLI11 takes the arguments last-first
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    throw Error(ErrorKind::kInvalidArgument, e.what());
  }
}

}  // namespace mixq
