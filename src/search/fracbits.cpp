// FracBits, PTQ mode (search/fracbits.h has the algorithm).
#include "search/fracbits.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

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

namespace mixq {

at::Tensor fracbits_interpolate(const at::Tensor& lambda, const std::function<at::Tensor(int)>& q_at) {
  const double l = std::clamp(lambda.item<double>(), double(kFracBitsMin), double(kFracBitsMax));
  const int lo = static_cast<int>(std::floor(l));
  const int hi = std::min(lo + 1, kFracBitsMax);
  at::Tensor frac = lambda - static_cast<double>(lo);  // floor is straight-through: d frac / d lambda = 1
  return frac * q_at(hi) + (1 - frac) * q_at(lo);
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

// The budgets as ratios cost / target (the largest one).
double budget_ratio(const Budget& b, const PlanCost& c) {
  double r = 0;
  if (b.avg_wbits > 0) r = std::max(r, c.avg_wbits / b.avg_wbits);
  if (b.bytes > 0) r = std::max(r, static_cast<double>(c.size_bytes) / static_cast<double>(b.bytes));
  if (b.bops > 0) r = std::max(r, c.bops / b.bops);
  return r;
}

struct ActTable {
  std::string tensor;
  std::vector<int> readers;                  // plan layer indices
  at::Tensor scale[kFracBitsMax + 1], zero[kFracBitsMax + 1];
  double qmin[kFracBitsMax + 1] = {}, qmax[kFracBitsMax + 1] = {};
};

}  // namespace

void allocate_fracbits(AllocContext& ctx) {
  const auto t0 = clock::now();
  MIXQ_CHECK(ctx.calib, ErrorKind::kInvalidArgument,
             "--search fracbits learns bit-widths on calibration data: it needs --calib");
  MIXQ_CHECK(!ctx.hw, ErrorKind::kUnsupported,
             "--search fracbits does not read hardware specs (--hw) yet; use --search ip or hago with --hw");
  const Budget b = context_budget(ctx);
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
  QuantPlan& plan = ctx.plan;
  const bool learn_acts = b.bops > 0;

  // (1) What is learned: unpinned layers on an affine grid; activation tensors read only by them.
  std::vector<int> wl;
  for (size_t i = 0; i < plan.layers.size(); ++i)
    if (!plan.layers[i].pinned && plan.layers[i].embed == EmbedScheme::kNone) wl.push_back(static_cast<int>(i));
  MIXQ_CHECK(!wl.empty(), ErrorKind::kInvalidArgument, "--search fracbits: every layer is pinned (--pin-bits 0 unpins)");
  std::vector<ActTable> acts;
  std::vector<int> act_of_layer(plan.layers.size(), -1);
  if (learn_acts) {
    std::map<std::string, std::vector<int>> readers;
    std::map<std::string, bool> ok;
    for (size_t i = 0; i < plan.layers.size(); ++i) {
      const LayerPlan& L = plan.layers[i];
      if (!L.quantize_input) continue;
      readers[L.input].push_back(static_cast<int>(i));
      auto [it, fresh] = ok.emplace(L.input, true);
      it->second = it->second && !L.pinned && L.embed == EmbedScheme::kNone && !L.input_sparq.enabled;
    }
    for (auto& [t, r] : readers) {
      if (!ok[t]) continue;
      ActTable a;
      a.tensor = t;
      a.readers = r;
      for (int i : r) act_of_layer[i] = static_cast<int>(acts.size());
      acts.push_back(std::move(a));
    }
  }

  // The model at 8 bits where bits are learned, ranges calibrated on the subset.
  auto sub = head_dataset(*ctx.calib, so.fracbits_samples);
  QuantPlan p8 = plan;
  for (int i : wl) p8.layers[i].weight_scheme.bits = kFracBitsMax;
  for (const auto& a : acts)
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
  std::vector<at::Tensor> wtrain(wl.size());

  // (2) The quantizers at every integer bit-width: weights dequantized (PTQ) or their parameters
  // (training: the weights move, the grid per bit-width stays where the float weights put it),
  // activation parameters.
  std::vector<std::vector<at::Tensor>> wq(wl.size());
  std::vector<std::vector<QParams>> wparams(wl.size());
  std::vector<std::vector<QScheme>> wscheme(wl.size());
  {
    at::NoGradGuard ng;
    for (size_t k = 0; k < wl.size(); ++k) {
      const LayerPlan& L = plan.layers[wl[k]];
      const at::Tensor& w0 = qm.graph.initializers.at(L.weight);
      at::Tensor w = w0.to(at::kFloat);
      wq[k].resize(kFracBitsMax + 1);
      for (int bits = kFracBitsMin; bits <= kFracBitsMax; ++bits) {
        QScheme s = L.weight_scheme;
        s.bits = bits;
        if (s.rounding == Rounding::kStochastic) s.rounding = Rounding::kNearest;  // no noise draw per step
        RangeOptions ro;
        ro.method = L.weight_range;
        wparams[k].resize(kFracBitsMax + 1);
        wscheme[k].resize(kFracBitsMax + 1);
        wparams[k][bits] = weight_params(w, s, ro);
        wscheme[k][bits] = s;
        if (!train) wq[k][bits] = fake_quantize(w, wparams[k][bits], s).reshape(w0.sizes()).to(w0.scalar_type());
      }
      if (train) wtrain[k] = w.reshape(w0.sizes()).clone().requires_grad_(true);
    }
    if (!acts.empty()) {
      auto obs = observe_activations(qm, p8, *sub, qo, /*histogram=*/true);
      for (auto& a : acts) {
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
  }

  // Q_b of learned layer j: PTQ the fixed table; training the weight's fake quantization with a
  // straight-through gradient to the weight.
  auto weight_at = [&](size_t j, int bits) -> at::Tensor {
    if (!train) return wq[j][bits];
    const at::Tensor w = wtrain[j];
    at::Tensor q = fake_quantize(w.detach(), wparams[j][bits], wscheme[j][bits]).reshape(w.sizes());
    return w + (q - w.detach());
  };

  // (3) Differentiable cost of the lambdas, relative to each target. Fixed layers (pinned, not
  // learned) count at their plan bits.
  std::vector<double> params(plan.layers.size()), macs(plan.layers.size());
  double total_params = 0;
  for (size_t i = 0; i < plan.layers.size(); ++i) {
    params[i] = static_cast<double>(plan.layers[i].params);
    macs[i] = static_cast<double>(plan.layers[i].macs);
    total_params += params[i];
  }
  std::vector<char> learned(plan.layers.size(), 0);
  for (int i : wl) learned[i] = 1;
  double fixed_bits = 0, fixed_bops = 0, learned_bits0 = 0;  // params x bits; BOPs of fixed layers
  for (size_t i = 0; i < plan.layers.size(); ++i) {
    const LayerPlan& L = plan.layers[i];
    if (!learned[i]) fixed_bits += params[i] * L.weight_scheme.bits, fixed_bops += layer_bops(L);
    else learned_bits0 += params[i] * L.weight_scheme.bits;
  }
  const double bytes0 = static_cast<double>(plan.cost.size_bytes);
  auto act_bits = [&](int i, const std::vector<at::Tensor>& la) -> at::Tensor {
    const LayerPlan& L = plan.layers[i];
    if (act_of_layer[i] >= 0) return la[act_of_layer[i]];
    return at::scalar_tensor(L.quantize_input ? double(L.input_scheme.bits) : 32.0, at::kDouble);
  };
  auto cost_term = [&](const std::vector<at::Tensor>& lw, const std::vector<at::Tensor>& la) {
    at::Tensor wbits = at::zeros({}, at::kDouble), bops = at::zeros({}, at::kDouble);
    for (size_t k = 0; k < wl.size(); ++k) {
      wbits = wbits + lw[k].to(at::kDouble) * params[wl[k]];
      if (b.bops > 0) bops = bops + lw[k].to(at::kDouble) * act_bits(wl[k], la).to(at::kDouble) * macs[wl[k]];
    }
    at::Tensor t = at::zeros({}, at::kDouble);
    if (b.avg_wbits > 0) t = t + ((wbits + fixed_bits) / (total_params * b.avg_wbits) - 1).abs();
    if (b.bytes > 0) t = t + ((bytes0 + (wbits - learned_bits0) / 8) / static_cast<double>(b.bytes) - 1).abs();
    if (b.bops > 0) t = t + ((bops + fixed_bops) / b.bops - 1).abs();
    return t;
  };
  // Initial bits: the uniform real bits whose cost meets the budgets (bisection), + 0.5.
  double init = kFracBitsMax;
  {
    auto over = [&](double u) {
      std::vector<at::Tensor> lw(wl.size(), at::scalar_tensor(u, at::kDouble)), la(acts.size(), at::scalar_tensor(u, at::kDouble));
      at::Tensor wbits = at::zeros({}, at::kDouble), bops = at::zeros({}, at::kDouble);
      double r = 0;
      for (size_t k = 0; k < wl.size(); ++k) {
        wbits = wbits + u * params[wl[k]];
        bops = bops + u * act_bits(wl[k], la).to(at::kDouble) * macs[wl[k]];
      }
      if (b.avg_wbits > 0) r = std::max(r, (wbits.item<double>() + fixed_bits) / (total_params * b.avg_wbits));
      if (b.bytes > 0) r = std::max(r, (bytes0 + (wbits.item<double>() - learned_bits0) / 8) / double(b.bytes));
      if (b.bops > 0) r = std::max(r, (bops.item<double>() + fixed_bops) / b.bops);
      return r;
    };
    double lo = kFracBitsMin, hi = kFracBitsMax;
    if (over(hi) <= 1) lo = hi;
    else if (over(lo) > 1) hi = lo;
    for (int i = 0; i < 40 && hi - lo > 1e-6; ++i) (over(0.5 * (lo + hi)) <= 1 ? lo : hi) = 0.5 * (lo + hi);
    init = std::min(lo + so.fracbits_init_offset, double(kFracBitsMax));
  }
  std::vector<at::Tensor> lw, la;
  for (size_t k = 0; k < wl.size(); ++k) lw.push_back(at::full({}, init, at::kFloat).requires_grad_(true));
  for (size_t k = 0; k < acts.size(); ++k) la.push_back(at::full({}, init, at::kFloat).requires_grad_(true));
  // Activation hooks: the interpolated quantizer replaces the plain one on learned tensors.
  for (size_t k = 0; k < acts.size(); ++k) {
    ActTable* a = &acts[k];
    rm.act(a->tensor)->enabled = false;
    at::Tensor* lam = &la[k];
    rm.quant().add_hook(ReconModel::quantized_value(a->tensor), [a, lam](const std::string&, at::Tensor& x) {
      const at::Tensor in = x;
      x = fracbits_interpolate(*lam, [&](int bits) {
        return fake_quant_fused(in, a->scale[bits], a->zero[bits], a->qmin[bits], a->qmax[bits]);
      });
    });
  }

  // (5) Global offset by bisection on the plan's own cost model, then freeze integer bits (PTQ:
  // after the last step; training: after 80% of them, the rest trains the weights alone).
  std::vector<double> lwv, lav;
  OffsetSearch off;
  int filled = 0;
  bool frozen = false;
  auto freeze = [&]() {
    lwv.clear();
    lav.clear();
    for (auto& t : lw) lwv.push_back(t.item<double>());
    for (auto& t : la) lav.push_back(t.item<double>());
    for (auto& t : lw) lwv.push_back(t.item<double>());
    for (auto& t : la) lav.push_back(t.item<double>());
    auto rounded = [&](double d) {
      QuantPlan p = plan;
      for (size_t k = 0; k < wl.size(); ++k) p.layers[wl[k]].weight_scheme.bits = fracbits_round(lwv[k], d);
      for (size_t k = 0; k < acts.size(); ++k)
        for (int i : acts[k].readers) {
          p.layers[i].input_scheme.bits = fracbits_round(lav[k], d);
          if (p.layers[i].input_scheme.bits != 8) p.layers[i].input_sparq = SparqScheme{};
        }
      unify_shared_inputs(p);
      update_cost(p);
      return p;
    };
    off = fracbits_offset([&](double d) { return budget_ratio(b, rounded(d).cost); }, -double(kFracBitsMax),
                                       double(kFracBitsMax), so.fracbits_bisect_tries);
    if (!off.feasible)
      log::warn("fracbits: the budget cannot be met even with every learned layer at 2 bits (cost / budget " +
                std::to_string(off.ratio) + "); the closest plan is used");
    plan = rounded(off.offset);
    // One global offset moves every layer together: on a model of a dozen layers the next step up
    // can overshoot the budget by several percent. The budget left is spent one bit at a time on
    // the learned bit-widths that were closest to rounding up (largest lambda + d - round), while
    // every budget still holds.
    if (off.feasible) {
      struct Slot {
        bool act;
        size_t k;
        double residual;
      };
      std::vector<Slot> slots;
      for (size_t k = 0; k < wl.size(); ++k) slots.push_back({false, k, lwv[k] + off.offset - std::round(lwv[k] + off.offset)});
      for (size_t k = 0; k < acts.size(); ++k)
        slots.push_back({true, k, lav[k] + off.offset - std::round(lav[k] + off.offset)});
      std::stable_sort(slots.begin(), slots.end(), [](const Slot& x, const Slot& y) { return x.residual > y.residual; });
      for (const Slot& sl : slots) {
        QuantPlan p = plan;
        bool raised = false;
        if (!sl.act) {
          int& bits = p.layers[wl[sl.k]].weight_scheme.bits;
          if (bits < kFracBitsMax) ++bits, raised = true;
        } else {
          for (int i : acts[sl.k].readers)
            if (p.layers[i].input_scheme.bits < kFracBitsMax) ++p.layers[i].input_scheme.bits, raised = true;
        }
        if (!raised) continue;
        unify_shared_inputs(p);
        update_cost(p);
        if (budget_ratio(b, p.cost) <= 1) plan = std::move(p), ++filled;
      }
    }
    // From here on the lambdas sit at the frozen integer bits: the interpolation is then the plain
    // quantizer at those bits (fracbits_interpolate), and they are no longer stepped.
    at::NoGradGuard ng;
    for (size_t k = 0; k < wl.size(); ++k) lw[k].fill_(double(plan.layers[wl[k]].weight_scheme.bits));
    for (size_t k = 0; k < acts.size(); ++k) la[k].fill_(double(plan.layers[acts[k].readers[0]].input_scheme.bits));
    frozen = true;
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
      for (size_t j = 0; j < wl.size(); ++j)
        rm.set_weight(plan.layers[wl[j]].name, fracbits_interpolate(lw[j], [&](int bits) { return weight_at(j, bits); }));
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
      at::Tensor cost = cost_term(lw, la);
      at::Tensor loss = frozen ? task : task + so.fracbits_kappa * cost;
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
      cost_last = cost.item<double>();
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
    for (size_t k = 0; k < wl.size(); ++k) {
      const std::string& name = plan.layers[wl[k]].weight;
      at::Tensor& dst = ctx.tune->initializers.at(name);
      dst = wtrain[k].detach().clone().to(dst.scalar_type());
    }
  }
  nlohmann::json lambdas = nlohmann::json::object(), lambdas_a = nlohmann::json::object();
  for (size_t k = 0; k < wl.size(); ++k) lambdas[plan.layers[wl[k]].name] = lwv[k];
  for (size_t k = 0; k < acts.size(); ++k) lambdas_a[acts[k].tensor] = lav[k];
  plan.search = "fracbits";
  plan.budget = b.to_json();
  plan.search_params = {{"mode", train ? "training" : "ptq"},
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
                        {"offset", off.offset},
                        {"budget_ratio_offset", off.ratio},
                        {"budget_ratio", budget_ratio(b, plan.cost)},
                        {"filled", filled},
                        {"bisection_tries", off.tries},
                        {"feasible", off.feasible},
                        {"lambda_w", lambdas},
                        {"lambda_a", lambdas_a},
                        {"seconds", std::chrono::duration<double>(clock::now() - t0).count()}};
  log::verbose("fracbits: offset " + std::to_string(off.offset) + ", cost / budget " + std::to_string(off.ratio) +
               ", after filling " + std::to_string(filled) + " bits " + std::to_string(budget_ratio(b, plan.cost)));
}

}  // namespace mixq
