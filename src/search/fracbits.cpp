// FracBits, PTQ mode (search/fracbits.h has the algorithm).
#include "search/fracbits.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <set>

#include "core/log.h"
#include "exec/evaluate.h"
#include "core/progress.h"
#include "mixq/error.h"
#include "quant/methods/calib_loss.h"
#include "quant/methods/fused_adam.h"
#include "quant/methods/fused_quant.h"
#include "quant/methods/recon_model.h"
#include "quant/observer.h"
#include "quant/quantize.h"
#include "quant/quantizer.h"
#include "search/allocator.h"
#include "search/context.h"
#include "search/fracbits_parts.h"

namespace mixq {

at::Tensor fracbits_interpolate(const at::Tensor& lambda, const std::function<at::Tensor(int)>& q_at) {
  const double l = std::clamp(lambda.item<double>(), double(kFracBitsMin), double(kFracBitsMax));
  const int lo = static_cast<int>(std::floor(l));
  const int hi = std::min(lo + 1, kFracBitsMax);
  at::Tensor frac = lambda - static_cast<double>(lo);  // floor is straight-through: d frac / d lambda = 1
  return frac * q_at(hi) + (1 - frac) * q_at(lo);
}

at::Tensor fracbits_interpolate_channels(const at::Tensor& lambda, int64_t axis,
                                         const std::function<at::Tensor(int)>& q_at) {
  const at::Tensor lo = at::floor(lambda.detach().clamp(kFracBitsMin, kFracBitsMax));
  const at::Tensor hi = at::clamp_max(lo + 1, kFracBitsMax);
  const at::Tensor frac = lambda - lo;  // floor straight-through, as in fracbits_interpolate
  const at::Tensor zero = at::zeros_like(frac);
  auto lov = lo.to(at::kInt).contiguous(), hiv = hi.to(at::kInt).contiguous();
  std::set<int> used(lov.data_ptr<int>(), lov.data_ptr<int>() + lov.numel());
  used.insert(hiv.data_ptr<int>(), hiv.data_ptr<int>() + hiv.numel());
  at::Tensor out;
  for (int b : used) {
    // Channel c's weight on Q_b: frac if b is its ceil, 1 - frac if its floor, else 0. At an
    // integer lambda that is exactly 1 x Q_lambda plus zeros.
    const at::Tensor coef = at::where(hi == b, frac, zero) + at::where(lo == b, 1 - frac, zero);
    at::Tensor q = q_at(b);
    std::vector<int64_t> view(static_cast<size_t>(q.dim()), 1);
    view.at(static_cast<size_t>(axis)) = lambda.numel();
    at::Tensor term = q * coef.reshape(view).to(q.scalar_type());
    out = out.defined() ? out + term : term;
  }
  return out;
}

int fracbits_round(double lambda, double offset) {
  return static_cast<int>(std::clamp(std::round(lambda + offset), double(kFracBitsMin), double(kFracBitsMax)));
}

OffsetSearch fracbits_offset(const std::function<double(double)>& ratio_at, double lo, double hi, int tries) {
  OffsetSearch r;
  double rlo = ratio_at(lo), rhi = ratio_at(hi);
  r.tries = 2;
  if (rlo > 1) return {lo, rlo, r.tries, false};
  if (rhi <= 1) return {hi, rhi, r.tries, true};
  // Invariant: ratio(lo) <= 1 < ratio(hi).
  for (; r.tries < tries; ++r.tries) {
    const double mid = 0.5 * (lo + hi);
    const double rm = ratio_at(mid);
    if (rm <= 1) lo = mid, rlo = rm;
    else hi = mid;
  }
  r.offset = lo;
  r.ratio = rlo;
  return r;
}

namespace {

using clock = std::chrono::steady_clock;

void check_fracbits_options(const AllocContext& ctx, const Budget& b) {
  MIXQ_CHECK(ctx.calib, ErrorKind::kInvalidArgument,
             "--search fracbits learns bit-widths on calibration data: it needs --calib");
  MIXQ_CHECK(!ctx.hw, ErrorKind::kUnsupported,
             "--search fracbits does not read hardware specs (--hw) yet; use --search ip or hago with --hw");
  MIXQ_CHECK(b.avg_wbits > 0 || b.bytes > 0 || b.bops > 0, ErrorKind::kInvalidArgument,
             "--search fracbits needs a size or BOPs budget: --budget-bits, --budget-bytes or --budget-bops");
  MIXQ_CHECK(b.latency_ms <= 0 && b.max_drop < 0, ErrorKind::kUnsupported,
             "--search fracbits supports size and BOPs budgets only (not --budget-latency-ms or --max-drop)");
  const SearchOptions& so = ctx.opts;
  MIXQ_CHECK(so.fracbits_iters >= 0 && so.fracbits_lr > 0 && so.fracbits_kappa >= 0 && so.fracbits_samples >= 1 &&
                 so.fracbits_batch >= 1,
             ErrorKind::kInvalidArgument,
             "fracbits: --fracbits-iters >= 0, --fracbits-lr > 0, --fracbits-kappa >= 0 and --fracbits-samples, "
             "--fracbits-batch >= 1");
  MIXQ_CHECK(so.fracbits_granularity == "layer" || so.fracbits_granularity == "channel", ErrorKind::kInvalidArgument,
             "--fracbits-granularity is layer or channel, not '", so.fracbits_granularity, "'");
}

// Step 2: the weight quantizers of learned layer k at every integer bit-width: dequantized
// weights (PTQ) or their parameters (training: the weights move, each bit-width's grid stays where
// the float weights put it). Kernel-wise bits use the same table: a channel's row of Q_b is the
// channel quantized on its own range at b bits (per-channel parameters are independent).
struct WeightTables {
  std::vector<std::vector<at::Tensor>> dq;       // [k][bits], PTQ only
  std::vector<std::vector<QParams>> params;      // [k][bits]
  std::vector<std::vector<QScheme>> scheme;      // [k][bits]
};
WeightTables weight_tables(const QuantPlan& plan, const QuantizedModel& qm, const FracTargets& t, bool train) {
  at::NoGradGuard ng;
  WeightTables wt;
  for (int i : t.layers) {
    const LayerPlan& L = plan.layers[i];
    const at::Tensor& w0 = qm.graph.initializers.at(L.weight);
    const at::Tensor w = w0.to(at::kFloat);
    wt.dq.emplace_back(kFracBitsMax + 1);
    wt.params.emplace_back(kFracBitsMax + 1);
    wt.scheme.emplace_back(kFracBitsMax + 1);
    for (int bits = kFracBitsMin; bits <= kFracBitsMax; ++bits) {
      QScheme s = L.weight_scheme;
      s.bits = bits;
      if (s.rounding == Rounding::kStochastic) s.rounding = Rounding::kNearest;  // no noise draw per step
      RangeOptions ro;
      ro.method = L.weight_range;
      wt.params.back()[bits] = weight_params(w, s, ro);
      wt.scheme.back()[bits] = s;
      if (!train)
        wt.dq.back()[bits] = fake_quantize(w, wt.params.back()[bits], s).reshape(w0.sizes()).to(w0.scalar_type());
    }
  }
  return wt;
}

// Step 2 for activations: each learned tensor's quantizer at every bit-width, from the histogram
// range at that width over one calibration pass.
void act_tables(const QuantPlan& plan, const QuantPlan& p8, const QuantizedModel& qm, const Dataset& sub,
                const QuantizeOptions& qo, FracTargets& t) {
  if (t.acts.empty()) return;
  at::NoGradGuard ng;
  auto obs = observe_activations(qm, p8, sub, qo, /*histogram=*/true);
  for (auto& a : t.acts) {
    const LayerPlan& L = plan.layers[a.readers[0]];
    for (int bits = kFracBitsMin; bits <= kFracBitsMax; ++bits) {
      QScheme s = L.input_scheme;
      s.bits = bits;
      RangeOptions ro;
      ro.method = L.input_range;
      auto [lo, hi] = histogram_range(obs.at(a.tensor).histogram(), s, ro);
      QParams p = params_from_range(at::scalar_tensor(lo, at::kFloat), at::scalar_tensor(hi, at::kFloat), s);
      a.scale[bits] = p.scale.to(at::kFloat).reshape({});
      a.zero[bits] = p.zero_point.to(at::kFloat).reshape({});
      a.qmin[bits] = static_cast<double>(s.qmin());
      a.qmax[bits] = static_cast<double>(s.qmax());
    }
  }
}

int64_t weight_axis(const LayerPlan& L) {
  const int64_t r = static_cast<int64_t>(L.weight_shape.size());
  return L.weight_scheme.axis < 0 ? L.weight_scheme.axis + r : L.weight_scheme.axis;
}

}  // namespace

void allocate_fracbits(AllocContext& ctx) {
  const auto t0 = clock::now();
  const Budget b = context_budget(ctx);
  check_fracbits_options(ctx, b);
  const SearchOptions& so = ctx.opts;
  QuantPlan& plan = ctx.plan;
  const bool learn_acts = b.bops > 0;
  const bool per_channel = so.fracbits_granularity == "channel";

  // (1) What is learned.
  FracTargets t = fracbits_targets(plan, learn_acts, per_channel);
  MIXQ_CHECK(!t.layers.empty(), ErrorKind::kInvalidArgument, "--search fracbits: every layer is pinned (--pin-bits 0 unpins)");

  // The model at 8 bits where bits are learned, ranges calibrated on the subset.
  auto sub = head_dataset(*ctx.calib, so.fracbits_samples);
  QuantPlan p8 = plan;
  for (int i : t.layers) p8.layers[i].weight_scheme.bits = kFracBitsMax;
  for (const auto& a : t.acts)
    for (int i : a.readers) p8.layers[i].input_scheme.bits = kFracBitsMax;
  QuantizeOptions qo;
  qo.progress = false;
  QuantizedModel qm = quantize_model(ctx.prepared, p8, *sub, qo);
  ReconModel rm(qm);
  for (ActQuant* a : rm.acts()) a->enabled = true;
  CalibSubset data(rm.fp(), *sub, so.fracbits_batch, qm.graph.source_path);

  // Training mode: a labelled training set, and the learned layers' weights as parameters.
  const bool train = !so.fracbits_train_data.empty();
  std::unique_ptr<Dataset> train_set;
  if (train) {
    MIXQ_CHECK(ctx.open_data && ctx.tune, ErrorKind::kUnsupported,
               "--train-data fine-tunes weights: use it with mixq quantize or pack (not mixq plan)");
    MIXQ_CHECK(so.fracbits_epochs >= 1 && so.fracbits_weight_lr > 0, ErrorKind::kInvalidArgument,
               "--epochs must be >= 1 and --fracbits-weight-lr > 0");
    train_set = ctx.open_data(so.fracbits_train_data);
    MIXQ_CHECK(train_set->size() > 0 && train_set->has_labels(), ErrorKind::kInvalidData, "--train-data ",
               train_set->describe(), ": training mode learns on the cross-entropy, it needs labelled samples");
  }
  std::vector<at::Tensor> wtrain(t.layers.size());
  if (train)
    for (size_t k = 0; k < t.layers.size(); ++k)
      wtrain[k] = qm.graph.initializers.at(plan.layers[t.layers[k]].weight).to(at::kFloat).clone().requires_grad_(true);

  // (2) The quantizers at every integer bit-width.
  const WeightTables wt = weight_tables(plan, qm, t, train);
  act_tables(plan, p8, qm, *sub, qo, t);
  // Q_b of learned layer j: PTQ the fixed table; training the weight's fake quantization with a
  // straight-through gradient to the weight.
  auto weight_at = [&](size_t j, int bits) -> at::Tensor {
    if (!train) return wt.dq[j][bits];
    const at::Tensor w = wtrain[j];
    at::Tensor q = fake_quantize(w.detach(), wt.params[j][bits], wt.scheme[j][bits]).reshape(w.sizes());
    return w + (q - w.detach());
  };

  // (3) The cost term, and the initial bits: the uniform real bits meeting the budgets, + 0.5.
  const FracCost cost(plan, t, b);
  const double init = std::min(cost.uniform_bits() + so.fracbits_init_offset, double(kFracBitsMax));
  std::vector<at::Tensor> lw, la;
  for (size_t k = 0; k < t.layers.size(); ++k)
    lw.push_back((per_channel ? at::full({t.channels[k]}, init, at::kFloat) : at::full({}, init, at::kFloat))
                     .requires_grad_(true));
  for (size_t k = 0; k < t.acts.size(); ++k) la.push_back(at::full({}, init, at::kFloat).requires_grad_(true));
  // Activation hooks: the interpolated quantizer replaces the plain one on learned tensors.
  for (size_t k = 0; k < t.acts.size(); ++k) {
    FracActTable* a = &t.acts[k];
    rm.act(a->tensor)->enabled = false;
    at::Tensor* lam = &la[k];
    rm.quant().add_hook(ReconModel::quantized_value(a->tensor), [a, lam](const std::string&, at::Tensor& x) {
      const at::Tensor in = x;
      x = fracbits_interpolate(*lam, [&](int bits) {
        return fake_quant_fused(in, a->scale[bits], a->zero[bits], a->qmin[bits], a->qmax[bits]);
      });
    });
  }

  // (5) Global offset and freeze (PTQ: after the last step; training: after 80% of them, the rest
  // trains the weights alone). The lambdas then sit at the frozen integers, where the
  // interpolation is the plain quantizer, and are no longer stepped.
  std::vector<std::vector<double>> lwv;
  std::vector<double> lav;
  FracFreeze fz;
  bool frozen = false;
  auto freeze = [&]() {
    lwv.clear();
    lav.clear();
    for (auto& l : lw) {
      at::Tensor c = l.detach().to(at::kDouble).contiguous().reshape({-1});
      lwv.emplace_back(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
    }
    for (auto& l : la) lav.push_back(l.item<double>());
    fz = fracbits_freeze(plan, t, b, lwv, lav, so.fracbits_bisect_tries);
    at::NoGradGuard ng;
    for (size_t k = 0; k < t.layers.size(); ++k) {
      const std::vector<int> bits = fracbits_frozen_bits(plan, t, k);
      lw[k].copy_(at::tensor(std::vector<float>(bits.begin(), bits.end())).reshape(lw[k].sizes()));
    }
    for (size_t k = 0; k < t.acts.size(); ++k) la[k].fill_(double(plan.layers[t.acts[k].readers[0]].input_scheme.bits));
    frozen = true;
  };
  auto interpolated_weight = [&](size_t j) {
    auto q_at = [&](int bits) { return weight_at(j, bits); };
    return per_channel ? fracbits_interpolate_channels(lw[j], weight_axis(plan.layers[t.layers[j]]), q_at)
                       : fracbits_interpolate(lw[j], q_at);
  };

  // (4) Learn the lambdas (and, training, the weights).
  std::vector<at::Tensor> params_all = lw;
  params_all.insert(params_all.end(), la.begin(), la.end());
  FusedAdam opt(params_all, so.fracbits_lr);
  std::unique_ptr<FusedAdam> wopt;
  if (train) wopt = std::make_unique<FusedAdam>(wtrain, so.fracbits_weight_lr);
  const int64_t steps = train ? so.fracbits_epochs * ((train_set->size() + so.fracbits_batch - 1) / so.fracbits_batch)
                              : so.fracbits_iters;
  const int64_t freeze_at = train ? static_cast<int64_t>(0.8 * static_cast<double>(steps)) : steps;
  double task_first = 0, task_last = 0, cost_last = 0;
  {
    Progress bar(train ? "fracbits (training)" : "fracbits", steps, "it");
    rm.quant().set_grad_enabled(true);
    for (int64_t it = 0; it < steps; ++it) {
      if (it == freeze_at && !frozen) freeze();
      for (size_t j = 0; j < t.layers.size(); ++j) rm.set_weight(plan.layers[t.layers[j]].name, interpolated_weight(j));
      at::Tensor task;
      if (!train) {
        const size_t k = static_cast<size_t>(it) % data.batches();
        const double rows = static_cast<double>(data.inputs(k)[0].size(0));
        task = data.batch_share(k, rm.quant().run(data.inputs(k))) * (double(data.samples()) / rows);
      } else {
        const int64_t n = train_set->size(), b0 = (it * so.fracbits_batch) % n;
        Batch bt = train_set->get(b0, std::min(n, b0 + so.fracbits_batch));
        bool classes = true;
        at::Tensor z = comparable_outputs(rm.quant().run(bt.inputs), &classes, qm.graph.source_path);
        MIXQ_CHECK(classes, ErrorKind::kUnsupported, "--train-data: training mode needs class scores to apply the labels to");
        task = at::nll_loss(at::log_softmax(z.to(at::kDouble), 1), bt.labels);
      }
      at::Tensor c = cost.term(lw, la);
      at::Tensor loss = frozen ? task : task + so.fracbits_kappa * c;
      opt.zero_grad();
      if (wopt) wopt->zero_grad();
      loss.backward();
      if (!frozen) opt.step();
      if (wopt) wopt->step();
      {
        at::NoGradGuard ng;
        for (auto& p : params_all) p.clamp_(kFracBitsMin, kFracBitsMax);
      }
      if (it == 0) task_first = task.item<double>();
      task_last = task.item<double>();
      cost_last = c.item<double>();
      bar.advance();
      if (it % 20 == 0) bar.set_postfix("loss " + std::to_string(task_last).substr(0, 6) + " cost " +
                                        std::to_string(cost_last).substr(0, 6));
    }
    rm.quant().set_grad_enabled(false);
    bar.finish();
  }
  if (!frozen) freeze();
  if (train) {
    // The fine-tuned float weights go into the job's graph; --method quantizes them at the plan.
    at::NoGradGuard ng;
    for (size_t k = 0; k < t.layers.size(); ++k) {
      at::Tensor& dst = ctx.tune->initializers.at(plan.layers[t.layers[k]].weight);
      dst = wtrain[k].detach().clone().reshape(dst.sizes()).to(dst.scalar_type());
    }
  }
  // Kernel-wise: lambda_w is each layer's mean over its channels (the channels' bits are in the plan).
  nlohmann::json lambdas = nlohmann::json::object(), lambdas_a = nlohmann::json::object();
  for (size_t k = 0; k < t.layers.size(); ++k) {
    double m = 0;
    for (double v : lwv[k]) m += v;
    lambdas[plan.layers[t.layers[k]].name] = m / double(lwv[k].size());
  }
  for (size_t k = 0; k < t.acts.size(); ++k) lambdas_a[t.acts[k].tensor] = lav[k];
  plan.search = "fracbits";
  plan.budget = b.to_json();
  plan.search_params = {{"mode", train ? "training" : "ptq"},
                        {"granularity", so.fracbits_granularity},
                        {"iters", steps},
                        {"frozen_at", freeze_at},
                        {"lr", so.fracbits_lr},
                        {"kappa", so.fracbits_kappa},
                        {"samples", train ? train_set->size() : data.samples()},
                        {"loss", train ? "cross-entropy on --train-data" : data.loss_name()},
                        {"init_bits", init},
                        {"learn_activations", learn_acts},
                        {"task_loss_first", task_first},
                        {"task_loss_last", task_last},
                        {"cost_term_last", cost_last},
                        {"offset", fz.off.offset},
                        {"budget_ratio_offset", fz.off.ratio},
                        {"budget_ratio", fracbits_budget_ratio(b, plan.cost)},
                        {"filled", fz.filled},
                        {"bisection_tries", fz.off.tries},
                        {"feasible", fz.off.feasible},
                        {"lambda_w", lambdas},
                        {"lambda_a", lambdas_a},
                        {"seconds", std::chrono::duration<double>(clock::now() - t0).count()}};
  log::verbose("fracbits: offset " + std::to_string(fz.off.offset) + ", cost / budget " + std::to_string(fz.off.ratio) +
               ", after filling " + std::to_string(fz.filled) + " bits " +
               std::to_string(fracbits_budget_ratio(b, plan.cost)));
}

}  // namespace mixq
