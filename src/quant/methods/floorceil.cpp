#include "quant/methods/floorceil.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <numeric>

#include "core/log.h"
#include "core/progress.h"
#include "mixq/error.h"
#include "quant/methods/calib_loss.h"
#include "quant/methods/recon_model.h"
#include "quant/quantizer.h"

namespace mixq {

at::Tensor rounded_codes(const QuantizedWeight& qw, const at::Tensor& w, Rounding r) {
  MIXQ_ASSERT(r == Rounding::kFloor || r == Rounding::kCeil, "rounded_codes: floor or ceil only");
  QScheme s = qw.scheme;
  s.rounding = r;
  return quantize(w.to(at::kFloat), qw.params, s).reshape(qw.codes.sizes());
}

namespace {

using clock = std::chrono::steady_clock;

// One layer's weight as the search moves it.
struct Target {
  size_t index = 0;       // qm.weights
  std::string layer;
  at::Tensor w;           // float weight
  at::Tensor start;       // codes before the search
  at::Tensor opt[2];      // floor, ceil codes
  int64_t axis = 0, channels = 1;
  at::Tensor moved;       // [channels] int: 0 = start codes, 1 = floor, 2 = ceil
};

const char* kOptName[2] = {"floor", "ceil"};

// mask [channels] (bool) broadcast against the weight along its channel axis.
at::Tensor along_axis(const Target& t, const at::Tensor& v) {
  std::vector<int64_t> shape(t.w.dim(), 1);
  if (t.w.dim() > 0) shape[t.axis] = t.channels;
  return v.reshape(shape);
}

// Per-channel <g, DQ(codes) - DQ(current)>, in double: [channels].
at::Tensor predicted(const Target& t, const QuantizedWeight& qw, const at::Tensor& g, const at::Tensor& codes) {
  at::Tensor d = (dequantize(codes, qw.params, qw.scheme) - dequantize(qw.codes, qw.params, qw.scheme)).reshape(t.w.sizes());
  at::Tensor p = (g.to(at::kDouble) * d.to(at::kDouble));
  if (p.dim() == 0) return p.reshape({1});
  return p.movedim(t.axis, 0).reshape({t.channels, -1}).sum(1);
}

}  // namespace

FloorCeilResult floorceil_rounding(MethodContext& ctx, const FloorCeilOptions& o) {
  MIXQ_CHECK(o.granularity == "layer" || o.granularity == "channel", ErrorKind::kInvalidArgument,
             "--floorceil-granularity must be layer or channel (got '", o.granularity, "')");
  MIXQ_CHECK(o.samples >= 1 && o.rounds >= 1 && o.max_evals >= 0 && o.halvings >= 0, ErrorKind::kInvalidArgument,
             "floor/ceil rounding: --floorceil-samples and --floorceil-rounds must be >= 1, --floorceil-evals >= 0");
  for (const auto& a : ctx.qm.activations)
    MIXQ_CHECK(!a.sparq.enabled, ErrorKind::kUnsupported, "floor/ceil rounding measures the model without SPARQ ",
               "windows, but tensor '", a.tensor, "' uses ", act_scheme_name(a.sparq),
               ": drop --act-scheme (or the plan's act_scheme) for --search floorceil");
  const auto t0 = clock::now();
  const bool per_channel = o.granularity == "channel";
  QuantizedModel& qm = ctx.qm;
  ReconModel rm(qm);
  for (ActQuant* a : rm.acts()) a->enabled = true;  // what is measured is what is exported
  auto sub = head_dataset(ctx.calib, o.samples);
  CalibSubset data(rm.fp(), *sub, o.batch, qm.graph.source_path);

  std::vector<Target> targets;
  nlohmann::json skipped = nlohmann::json::array();
  {
    at::NoGradGuard ng;
    for (size_t i = 0; i < qm.weights.size(); ++i) {
      const QuantizedWeight& qw = qm.weights[i];
      if (qw.embed != EmbedScheme::kNone) {
        skipped.push_back({{"layer", qw.node}, {"why", std::string("row-wise embedding scheme ") + embed_scheme_name(qw.embed)}});
        continue;
      }
      Target t;
      t.index = i;
      t.layer = qw.node;
      t.w = qm.graph.initializers.at(qw.weight).to(at::kFloat);
      t.start = qw.codes.to(at::kFloat).clone();  // (codes may be compact: qmodel.h)
      t.opt[0] = rounded_codes(qw, t.w, Rounding::kFloor);
      t.opt[1] = rounded_codes(qw, t.w, Rounding::kCeil);
      if (per_channel && t.w.dim() > 0) {
        t.axis = qw.scheme.axis < 0 ? qw.scheme.axis + t.w.dim() : qw.scheme.axis;
        t.channels = t.w.size(t.axis);
      }
      t.moved = at::zeros({t.channels}, at::kInt);
      targets.push_back(std::move(t));
    }
  }
  auto set_codes = [&](Target& t, const at::Tensor& codes) {
    qm.weights[t.index].codes = codes;
    rm.use_quantized_weight(t.layer);
  };

  double loss = [&] {
    at::NoGradGuard ng;
    return data.loss(rm.quant());
  }();
  const double loss_before = loss;
  int64_t evals = 0, accepted = 0;
  nlohmann::json trace = nlohmann::json::array();
  nlohmann::json rounds = nlohmann::json::array();
  double grad_seconds = 0;

  for (int round = 0; round < o.rounds && evals < o.max_evals; ++round) {
    // (2) One backward pass: g = dL/dW~ for every target's dequantized weight.
    std::vector<at::Tensor> grads(targets.size());
    {
      const auto tg = clock::now();
      std::vector<at::Tensor> leaves;
      for (auto& t : targets) {
        at::Tensor leaf = rm.dequantized_weight(t.layer).detach().requires_grad_(true);
        rm.set_weight(t.layer, leaf);
        leaves.push_back(leaf);
      }
      rm.quant().set_grad_enabled(true);
      for (size_t b = 0; b < data.batches(); ++b) data.batch_share(b, rm.quant().run(data.inputs(b))).backward();
      rm.quant().set_grad_enabled(false);
      for (size_t k = 0; k < targets.size(); ++k) {
        grads[k] = leaves[k].grad().defined() ? leaves[k].grad().detach() : at::zeros_like(leaves[k]).detach();
        rm.use_quantized_weight(targets[k].layer);
      }
      grad_seconds += std::chrono::duration<double>(clock::now() - tg).count();
    }
    at::NoGradGuard ng;
    // (3) Candidates with their predicted change.
    struct Move {
      size_t target;
      at::Tensor choice;  // [channels] int: 0 keep, 1 floor, 2 ceil
      double pred;
      int64_t channels;   // channels it changes
    };
    std::vector<std::vector<Move>> tries(targets.size());  // per target, in the order to try
    std::vector<double> best_pred(targets.size(), 0);
    for (size_t k = 0; k < targets.size(); ++k) {
      Target& t = targets[k];
      const QuantizedWeight& qw = qm.weights[t.index];
      at::Tensor p[2] = {predicted(t, qw, grads[k], t.opt[0]), predicted(t, qw, grads[k], t.opt[1])};
      if (!per_channel) {
        for (int op = 0; op < 2; ++op) {
          const double v = p[op].sum().item<double>();
          if (v < 0) tries[k].push_back({k, at::full({t.channels}, op + 1, at::kInt), v, t.channels});
        }
        std::sort(tries[k].begin(), tries[k].end(), [](const Move& a, const Move& b) { return a.pred < b.pred; });
      } else {
        // Each channel's better option; channels predicted to gain, best first; then halves.
        at::Tensor ceil_better = p[1] < p[0];
        at::Tensor best = at::where(ceil_better, p[1], p[0]);
        at::Tensor opt = ceil_better.to(at::kInt) + 1;
        at::Tensor order = at::argsort(best);
        const auto bv = best.accessor<double, 1>();
        const auto ov = order.accessor<int64_t, 1>();
        int64_t n = 0;
        while (n < t.channels && bv[ov[n]] < 0) ++n;
        for (int h = 0; h <= o.halvings && n > 0; ++h, n /= 2) {
          at::Tensor sel = order.narrow(0, 0, n);
          at::Tensor choice = at::zeros({t.channels}, at::kInt);
          choice.index_put_({sel}, opt.index({sel}));
          tries[k].push_back({k, choice, best.index({sel}).sum().item<double>(), n});
        }
      }
      if (!tries[k].empty()) best_pred[k] = tries[k].front().pred;
    }
    // Targets by their best predicted gain; in layer mode all (layer, option) moves by gain.
    std::vector<Move> queue;
    if (!per_channel) {
      for (auto& v : tries)
        for (auto& m : v) queue.push_back(m);
      std::stable_sort(queue.begin(), queue.end(), [](const Move& a, const Move& b) { return a.pred < b.pred; });
    } else {
      std::vector<size_t> order(targets.size());
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return best_pred[a] < best_pred[b]; });
      for (size_t k : order)
        for (auto& m : tries[k]) queue.push_back(m);
    }
    // (4) Measure; keep only what lowers the loss. A target moves at most once per round.
    std::vector<char> done(targets.size(), 0);
    int64_t round_accepted = 0;
    const double round_start = loss;
    Progress bar("floor/ceil",
                 ctx.opts.progress ? static_cast<int64_t>(std::min<size_t>(queue.size(), size_t(o.max_evals - evals))) : 0,
                 "moves");
    for (const Move& m : queue) {
      if (evals >= o.max_evals) break;
      if (done[m.target]) continue;
      Target& t = targets[m.target];
      const at::Tensor cur = qm.weights[t.index].codes.to(at::kFloat);
      at::Tensor codes = cur;
      for (int op = 0; op < 2; ++op) codes = at::where(along_axis(t, m.choice == op + 1), t.opt[op], codes);
      set_codes(t, codes);
      const double l = data.loss(rm.quant());
      ++evals;
      const bool keep = l < loss;
      nlohmann::json e = {{"round", round}, {"layer", t.layer}, {"channels", m.channels}, {"predicted", m.pred},
                          {"loss_before", loss}, {"loss_after", l}, {"accepted", keep}};
      if (!per_channel) e["option"] = kOptName[m.choice[0].item<int>() - 1];
      trace.push_back(e);
      if (keep) {
        loss = l;
        ++accepted;
        ++round_accepted;
        done[m.target] = 1;
        t.moved = at::where(m.choice > 0, m.choice, t.moved);
      } else {
        set_codes(t, cur);
      }
      bar.advance();
      bar.set_postfix("loss " + std::to_string(loss).substr(0, 7));
    }
    bar.finish();
    rounds.push_back({{"round", round}, {"loss_start", round_start}, {"loss_end", loss}, {"accepted", round_accepted}});
    if (round_accepted == 0) break;
  }

  // What moved, per layer, and the layers now wholly floor- or ceil-rounded.
  FloorCeilResult res;
  int64_t layers_flipped = 0, channels_flipped = 0, ch_floor = 0, ch_ceil = 0, channels_total = 0;
  nlohmann::json layers = nlohmann::json::array();
  {
    at::NoGradGuard ng;
    for (auto& t : targets) {
      const at::Tensor codes = qm.weights[t.index].codes.to(at::kFloat);
      channels_total += t.channels;
      const bool changed = !at::equal(codes, t.start);
      if (!changed) continue;
      ++layers_flipped;
      const int64_t nf = (t.moved == 1).sum().item<int64_t>(), nc = (t.moved == 2).sum().item<int64_t>();
      ch_floor += nf;
      ch_ceil += nc;
      channels_flipped += nf + nc;
      nlohmann::json jl = {{"layer", t.layer}, {"channels", t.channels}, {"floor_channels", nf}, {"ceil_channels", nc},
                           {"codes_changed", (codes != t.start).sum().item<int64_t>()}, {"codes", codes.numel()}};
      if (at::equal(codes, t.opt[0])) res.layer_rounding[t.layer] = Rounding::kFloor;
      else if (at::equal(codes, t.opt[1])) res.layer_rounding[t.layer] = Rounding::kCeil;
      if (res.layer_rounding.count(t.layer)) {
        jl["rounding"] = rounding_name(res.layer_rounding[t.layer]);
        qm.weights[t.index].scheme.rounding = res.layer_rounding[t.layer];  // the codes are exactly that
      }
      layers.push_back(jl);
    }
  }
  const double seconds = std::chrono::duration<double>(clock::now() - t0).count();
  res.report = {{"granularity", o.granularity},
                {"loss", data.loss_name()},
                {"samples", data.samples()},
                {"loss_float", data.float_loss()},
                {"loss_before", loss_before},
                {"loss_after", loss},
                {"below_float", data.has_labels() && loss < data.float_loss()},
                {"candidate_layers", targets.size()},
                {"layers_flipped", layers_flipped},
                {"channels_flipped", channels_flipped},
                {"channels_total", channels_total},
                {"floor_channels", ch_floor},
                {"ceil_channels", ch_ceil},
                {"evaluations", evals},
                {"accepted", accepted},
                {"rounds", rounds},
                {"layers", layers},
                {"skipped", skipped},
                {"trace", trace},
                {"gradient_seconds", grad_seconds},
                {"seconds", seconds}};
  log::info("floor/ceil: " + std::to_string(layers_flipped) + " of " + std::to_string(targets.size()) +
            " layers flipped (" + std::to_string(channels_flipped) + " channels), calibration " + data.loss_name() +
            " " + std::to_string(loss_before) + " -> " + std::to_string(loss) +
            (data.has_labels() ? " (float " + std::to_string(data.float_loss()) + ")" : std::string()));
  return res;
}

}  // namespace mixq
