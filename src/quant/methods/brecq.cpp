// BRECQ (Li et al., ICLR 2021; seed 001) and AdaRound (Nagel et al., ICML 2020): learned
// rounding, reconstructed unit by unit in network order. AdaRound's units are single layers
// (with the activation after them), BRECQ's are blocks (graph/blocks.h). Per unit:
//  1. cache its inputs from the model quantized so far (activations float) and the float
//     model's outputs (and, with --rec-loss fisher, squared task-loss gradients at the output);
//  2. optimise the rounding variables V of its layers (quant/methods/soft_quant.h) with Adam
//     (lr 1e-3, batch 32, 20,000 iterations): loss = reconstruction error + lambda (0.01) *
//     sum(1 - |2h(V) - 1|^beta), the regulariser off for the first 20% and beta annealed
//     linearly 20 -> 2 over the rest;
//  3. hard rounding: codes = floor(W / s) + [V >= 0] + z.
// Then activations: ranges recalibrated with the new weights, and per unit the step sizes of its
// layers' input quantizers learned LSQ-style (Adam 4e-4, cosine to 0, 5,000 iterations), inputs
// from the model with weights and earlier activations quantized. First and last layer (pinned)
// are neither reconstructed nor learned (METHODS.md), unless --recon-pinned: BRECQ's released
// code reconstructs them too, layer-wise at their 8 bits (the last layer then absorbs the error
// of the low-bit layers before it).
// Interrupts: at the next iteration the method throws Interrupted; every finished unit is in the
// checkpoint (--checkpoint, recon_checkpoint.h), so the same command resumes bit-identically.
// Fisher weights (ours): g^2 with g = d(cross-entropy)/d(unit output) per sample, divided by the
// mean g^2 so lambda keeps its meaning (BRECQ's released code weights by (|g| + 1)^2 of a
// KL gradient instead, which for small gradients is close to plain MSE).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <map>
#include <optional>
#include <set>

#include "core/interrupt.h"
#include "core/log.h"
#include "core/progress.h"
#include "graph/blocks.h"
#include "quant/methods/fused_adam.h"
#include "quant/methods/method.h"
#include "quant/methods/recon_checkpoint.h"
#include "quant/methods/recon_loop.h"
#include "quant/methods/soft_quant.h"
#include "quant/quantize.h"

namespace mixq {

namespace {

double beta_at(const ReconOptions& o, int64_t it) {
  const double start = o.warmup * static_cast<double>(o.iters);
  const double ratio = (static_cast<double>(it) - start) / std::max(1.0, static_cast<double>(o.iters) - start);
  return o.beta_end + (o.beta_start - o.beta_end) * std::max(0.0, 1.0 - ratio);
}

// Phase 1: learned rounding of every unit's unpinned layers.
void reconstruct_rounding(MethodContext& ctx, ReconModel& rm, const std::vector<Unit>& units,
                          const std::set<std::string>& pinned, CacheBudget& budget, at::Generator& gen,
                          ConvPrecision precision_in_loop, ReconCheckpoint& ck, nlohmann::json& jr) {
  const ReconOptions& o = ctx.opts;
  const bool fisher = o.rec_loss == "fisher";
  int done = 0, todo = 0;
  for (const auto& u : units)
    for (const auto& l : u.layers)
      if (!pinned.count(l)) { ++todo; break; }
  double spent = 0;
  for (size_t ui = 0; ui < units.size(); ++ui) {
    const Unit& u = units[ui];
    std::vector<std::string> layers;
    for (const auto& l : u.layers)
      if (!pinned.count(l)) layers.push_back(l);
    if (layers.empty()) continue;
    ++done;
    if (static_cast<int64_t>(ui) < ck.next("weights")) {  // finished before an interrupt: replay it
      for (const auto& l : layers) {
        QuantizedWeight& w = rm.weight(l);
        w.codes = ck.tensor("codes/" + l).reshape(w.codes.sizes()).contiguous();
        rm.use_quantized_weight(l);
      }
      continue;
    }
    nlohmann::json ju = {{"unit", u.name}, {"kind", unit_kind_name(u.kind)}, {"layers", layers}};
    auto t0 = LoopTimer::clock::now();
    UnitCache cache = cache_unit(rm, u, ctx, budget, fisher);
    ju["cache_spilled"] = !cache.in.empty() && cache.in[0].spilled();
    std::vector<SoftRounding> rounders;
    std::vector<at::Tensor> params;
    for (const auto& l : layers) {
      QuantizedWeight& w = rm.weight(l);
      rounders.emplace_back(rm.qmodel().graph.initializers.at(w.weight), w.params, w.scheme);
      params.push_back(rounders.back().v());
    }
    ju["loss_nearest"] = unit_loss_eval(rm, u, cache);
    FusedAdam opt(params, o.lr);
    rm.quant().set_grad_enabled(true);
    const int64_t n = cache.rows(), batch = std::min(o.batch, n);
    const int64_t warm = static_cast<int64_t>(o.warmup * static_cast<double>(o.iters));
    char label[160];
    std::snprintf(label, sizeof label, "%s %d/%d %s", ctx.plan.method.c_str(), done, todo, u.name.c_str());
    Progress bar(label, o.progress ? o.iters : 0, "it");
    LoopTimer timer;
    auto profile = op_profile("weights", u.name);
    std::optional<ConvPrecisionScope> precision(std::in_place, precision_in_loop);
    int64_t it = 0;
    double rec_last = 0;
    for (; it < o.iters; ++it) {
      throw_if_interrupted();  // a safe point: this unit restarts on resume, the earlier ones are saved
      at::Tensor idx = at::randperm(n, gen, at::kLong).slice(0, 0, batch);
      const double beta = it >= warm ? beta_at(o, it) : 0.0;  // 0: regulariser off (warm-up)
      at::Tensor reg;
      for (size_t k = 0; k < layers.size(); ++k) {
        const at::Tensor& orig = rm.qmodel().graph.initializers.at(rm.weight(layers[k]).weight);
        auto [w, r] = rounders[k].soft_weight_and_regularizer(beta);
        rm.set_weight(layers[k], w.view(orig.sizes()));
        if (r.defined()) reg = reg.defined() ? reg + r : r;
      }
      timer.other += timer.lap();
      at::Tensor rec = unit_loss(rm, u, cache, idx);
      at::Tensor loss = reg.defined() ? rec + o.lambda * reg : rec;
      timer.backward_and_step(opt, loss);
      if (it % 100 == 0 || it + 1 == o.iters) {
        rec_last = rec.item<double>();
        char pf[96];
        std::snprintf(pf, sizeof pf, "rec %.4g loss %.4g", rec_last, loss.item<double>());
        bar.set_postfix(pf);
      }
      bar.advance();
    }
    bar.finish();
    profile.reset();
    precision.reset();
    rm.quant().set_grad_enabled(false);
    for (size_t k = 0; k < layers.size(); ++k) {
      QuantizedWeight& w = rm.weight(layers[k]);
      w.codes = rounders[k].hard_codes().reshape(w.codes.sizes()).contiguous();
      rm.use_quantized_weight(layers[k]);
    }
    ju["loss_learned"] = unit_loss_eval(rm, u, cache);
    finish_unit_report(ju, it, timer, t0);
    const double secs = ju["seconds"].get<double>();
    spent += secs;
    log::verbose(std::string("  ") + u.name + ": rec loss nearest " + std::to_string(ju["loss_nearest"].get<double>()) +
                 " -> learned " + std::to_string(ju["loss_learned"].get<double>()));
    if (o.progress && todo > done) {
      char eta[128];
      std::snprintf(eta, sizeof eta, "%s: %d/%d units, overall ETA %.0f s", ctx.plan.method.c_str(), done, todo,
                    spent / done * (todo - done));
      log::info(eta);
    }
    jr.push_back(ju);
    std::map<std::string, at::Tensor> saved;
    for (const auto& l : layers) saved["codes/" + l] = rm.weight(l).codes;
    ck.record("weights", static_cast<int64_t>(ui) + 1, saved, jr, gen);
  }
}

// Phase 2: activation step sizes per unit (LSQ), activations of earlier units quantized.
void learn_activation_steps(MethodContext& ctx, ReconModel& rm, const std::vector<Unit>& units,
                            const std::set<std::string>& pinned, CacheBudget& budget, at::Generator& gen,
                            ConvPrecision precision_in_loop, ReconCheckpoint& ck, nlohmann::json& jr) {
  const ReconOptions& o = ctx.opts;
  const bool fisher = o.rec_loss == "fisher";
  for (size_t ui = 0; ui < units.size(); ++ui) {
    const Unit& u = units[ui];
    std::vector<ActQuant*> learn, fixed;
    std::set<ActQuant*> seen;
    for (const auto& l : u.layers) {
      ActQuant* a = rm.act_of_layer(l);
      if (!a || !seen.insert(a).second) continue;
      (pinned.count(l) ? fixed : learn).push_back(a);
    }
    for (ActQuant* a : fixed) a->enabled = true;
    // A tensor read by a pinned and an unpinned layer keeps its calibrated step.
    learn.erase(std::remove_if(learn.begin(), learn.end(),
                               [&](ActQuant* a) { return std::find(fixed.begin(), fixed.end(), a) != fixed.end(); }),
                learn.end());
    if (learn.empty()) continue;
    if (static_cast<int64_t>(ui) < ck.next("acts")) {  // finished before an interrupt: replay it
      for (ActQuant* a : learn) {
        a->enabled = true;
        a->scale = ck.tensor("act/" + a->tensor);
      }
      continue;
    }
    nlohmann::json ju = {{"unit", u.name}};
    std::vector<std::string> names;
    for (ActQuant* a : learn) names.push_back(a->tensor);
    ju["activations"] = names;
    auto t0 = LoopTimer::clock::now();
    UnitCache cache = cache_unit(rm, u, ctx, budget, fisher, o.act_float_inputs);
    for (ActQuant* a : learn) a->enabled = true;
    ju["loss_calibrated"] = unit_loss_eval(rm, u, cache);
    std::vector<at::Tensor> params;
    for (ActQuant* a : learn) {
      a->scale = a->scale.detach().clone().set_requires_grad(true);
      params.push_back(a->scale);
    }
    FusedAdam opt(params, o.act_lr);
    rm.quant().set_grad_enabled(true);
    const int64_t n = cache.rows(), batch = std::min(o.batch, n);
    Progress bar("act steps " + u.name, o.progress ? o.act_iters : 0, "it");
    LoopTimer timer;
    auto profile = op_profile("acts", u.name);
    std::optional<ConvPrecisionScope> precision(std::in_place, precision_in_loop);
    int64_t it = 0;
    for (; it < o.act_iters; ++it) {
      throw_if_interrupted();
      opt.set_lr(o.act_lr * 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(it) / static_cast<double>(o.act_iters))));
      at::Tensor idx = at::randperm(n, gen, at::kLong).slice(0, 0, batch);
      timer.other += timer.lap();
      at::Tensor loss = unit_loss(rm, u, cache, idx, o.act_loss_p);
      timer.backward_and_step(opt, loss);
      {
        at::NoGradGuard ng;
        for (ActQuant* a : learn) a->scale.clamp_min_(1e-8);  // a step must stay positive
      }
      timer.step += timer.lap();
      if (it % 100 == 0) show_loss(bar, "rec", loss);
      bar.advance();
    }
    bar.finish();
    profile.reset();
    precision.reset();
    rm.quant().set_grad_enabled(false);
    for (ActQuant* a : learn) a->scale = a->scale.detach();
    ju["loss_learned"] = unit_loss_eval(rm, u, cache);
    finish_unit_report(ju, it, timer, t0);
    jr.push_back(ju);
    std::map<std::string, at::Tensor> saved;
    for (ActQuant* a : learn) saved["act/" + a->tensor] = a->scale;
    ck.record("acts", static_cast<int64_t>(ui) + 1, saved, jr, gen);
  }
  rm.store_activation_params();
}

constexpr int64_t kSequentialInitSamples = 64;  // BRECQ's code: cali_data[:64]

// Activation ranges as BRECQ's code initialises them: one pass of `head` (one batch) through the
// quantized model, every quantizer taking its range (the plan's estimator) from the values that
// reach it, with the weights and every quantizer before it already applied; then all disabled
// again, as the step-learning phase expects.
void init_steps_sequential(MethodContext& ctx, ReconModel& rm, const Dataset& head) {
  std::map<std::string, const LayerPlan*> reader;  // the first layer reading a tensor names its estimator
  for (const auto& L : ctx.plan.layers)
    if (L.quantize_input) reader.emplace(L.input, &L);
  for (QuantizedActivation& qa : ctx.qm.activations) {
    ActQuant* a = rm.act(qa.tensor);
    auto r = reader.find(qa.tensor);
    if (!a || r == reader.end()) continue;
    RangeOptions ro;
    ro.method = r->second->input_range;
    // Writes the range into qm's activation (what the step learning starts from), then applies it.
    a->on_value = [ro, &qa](ActQuant& self, const at::Tensor& x) {
      ActivationObserver obs(ro.bins);
      obs.observe_range(x);
      if (obs.needs_histogram(ro)) obs.observe_histogram(x);
      qa.params = obs.params(qa.scheme, ro);
      self.load(qa);
      self.enabled = true;
      self.on_value = nullptr;  // once: later runs quantize with this range
    };
  }
  {
    at::NoGradGuard ng;
    Batch b = head.get(0, head.size());
    std::vector<std::string> outputs;
    for (const auto& v : ctx.prepared.outputs) outputs.push_back(v.name);
    rm.quant().run(rm.feeds(b), outputs);
  }
  for (ActQuant* a : rm.acts()) {
    a->on_value = nullptr;
    a->enabled = false;
  }
}

void reconstruct(MethodContext& ctx, bool blocks) {
  install_interrupt_handler();
  const ReconOptions& o = ctx.opts;
  MIXQ_CHECK(o.rec_loss == "mse" || o.rec_loss == "fisher", ErrorKind::kInvalidArgument, "--rec-loss must be mse or fisher (got '",
             o.rec_loss, "')");
  const std::set<std::string> pinned = pinned_layers(ctx.plan);
  const std::vector<LayerInfo> layers = quantized_layers(ctx);
  const std::vector<Unit> units = blocks ? partition_units(ctx.prepared, layers, pinned) : layer_units(ctx.prepared, layers);
  const ConvPrecision precision = loop_precision(o);  // a bad --recon-precision fails before any caching
  CacheBudget budget = cache_budget(o);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  // Everything that changes the result is in the checkpoint's key (with the model, plan and data).
  const nlohmann::json settings = {
      {"units", blocks ? "blocks" : "layers"}, {"iters", o.iters}, {"batch", o.batch}, {"lr", o.lr},
      {"lambda", o.lambda}, {"beta", {o.beta_start, o.beta_end, o.warmup}}, {"rec_loss", o.rec_loss},
      {"act_iters", o.act_iters}, {"act_lr", o.act_lr}, {"learn_act", o.learn_act}, {"seed", o.seed},
      {"act_loss_p", o.act_loss_p}, {"act_init_samples", o.act_init_samples}, {"act_float_inputs", o.act_float_inputs},
      {"act_init_sequential", o.act_init_sequential},
      {"recon_pinned", o.recon_pinned},
      {"calib_batch", o.calib_batch}, {"precision", precision == ConvPrecision::kBFloat16 ? "bf16" : "fp32"}};
  ReconCheckpoint ck(ctx, blocks ? "brecq" : "adaround", settings);
  // Replaying finished units draws nothing from the generator, so its saved state (after the last
  // finished unit) is what the first unit still to run must start from.
  ck.restore_generator(gen);

  ReconModel rm(ctx.qm);
  nlohmann::json jw = ck.reports("weights");
  // Layers the loops leave as they are: the pinned ones, or none with --recon-pinned.
  const std::set<std::string> kept = o.recon_pinned ? std::set<std::string>{} : pinned;
  reconstruct_rounding(ctx, rm, units, kept, budget, gen, precision, ck, jw);
  ctx.report["units"] = jw;
  ctx.report["rec_loss"] = o.rec_loss;
  ctx.report["iters"] = o.iters;
  ctx.report["precision"] = precision == ConvPrecision::kBFloat16 ? "bf16" : "fp32";  // as resolved
  if (ctx.after_rounding) {  // deep: the finishing steps may change tensors in place
    QuantizedModel& s = *ctx.after_rounding;
    s.graph = ctx.qm.graph;
    for (auto& [name, t] : s.graph.initializers) t = t.clone();
    s.weights = ctx.qm.weights;
    for (auto& w : s.weights) w.codes = w.codes.clone();
    s.activations.clear();
  }

  bool any_act = false;
  for (const auto& L : ctx.plan.layers)
    any_act = any_act || (L.quantize_input && L.input_scheme.bits < 16 && (!L.pinned || o.recon_pinned));
  if (!o.learn_act || !any_act) return;
  QuantizeOptions qo;
  qo.batch_size = o.calib_batch;
  qo.progress = o.progress;
  // Ranges for the reconstructed weights (on the first --act-init-samples samples when set).
  std::unique_ptr<Dataset> head;
  if (o.act_init_samples > 0 || o.act_init_sequential)
    head = head_dataset(ctx.calib, o.act_init_samples > 0 ? o.act_init_samples : kSequentialInitSamples);
  if (o.act_init_sequential) {
    init_steps_sequential(ctx, rm, *head);
  } else {
    calibrate_activations(ctx.qm, ctx.plan, head ? *head : ctx.calib, qo);
    rm.load_activation_params();
  }
  nlohmann::json ja = ck.reports("acts");
  learn_activation_steps(ctx, rm, units, kept, budget, gen, precision, ck, ja);
  ctx.report["activation_units"] = ja;
  ctx.report["act_iters"] = o.act_iters;
}

}  // namespace

void refine_adaround(MethodContext& ctx) { reconstruct(ctx, false); }
void refine_brecq(MethodContext& ctx) { reconstruct(ctx, true); }

}  // namespace mixq
