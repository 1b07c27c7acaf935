// Multipoint quantization (seed 001; METHODS.md "Multipoint quantization"): each output channel's
// weights as a sum of a few low-bit vectors with real scales. The first vector is the layer's own
// quantized weight (the range method of the row: Lp clipping, p = 2.4); extra points are fitted
// greedily to the residual (quant/multipoint_ref.h: a 1-D search over the point's scale, codes on
// the layer's grid) and given to the channels whose output error on calibration data,
// ||(w - w~)^T X||^2, is largest, until a budget of extra points (--mp-extra, a fraction of the
// eligible output channels) or an error threshold (--mp-threshold) is reached.
//
// Our choices where the paper leaves room:
//  - X is each layer's float input (the float model on the first --mp-samples calibration
//    samples), so every layer's error is measured independently of the others' choices.
//  - Errors are compared across layers relative to the layer's mean output energy per channel
//    (sum ||w_c^T X||^2 / C), so a channel's error reads like an inverse SQNR and layers of any
//    scale compete for one budget.
//  - Points are handed out in --mp-rounds rounds of equal shares of the budget; after each round
//    the touched layers' next candidates are refitted and measured. A point is only added where it
//    lowers the channel's measured output error, and a channel takes at most --mp-max-points.
// The points are executed as extra output channels in the same low-bit arithmetic plus a scaled
// sum (pack/from_qmodel.cpp, runtime/ops_multipoint.cpp); the plan counts every point's bits.
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>

#include "core/interrupt.h"
#include "core/log.h"
#include "core/progress.h"
#include "graph/layers.h"
#include "quant/embed_quant.h"
#include "quant/methods/method.h"
#include "quant/methods/recon_loop.h"
#include "quant/methods/recon_model.h"
#include "quant/multipoint.h"

namespace mixq {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct MpLayer {
  LayerInfo info;
  QuantizedWeight* qw = nullptr;
  int64_t out_axis = 1;      // channel axis of the node's output
  at::Tensor residual;       // [C, K]: float weight - quantized weight, as rows
  PointFit cand;             // the next point of every channel
  at::Tensor err, err_cand;  // double [C]: output error now / with the candidate point
  double norm = 1;           // mean output energy per channel
  std::vector<int64_t> points;
  double err_start = 0;      // sum of err / norm before any point
};

// Why a layer gets no extra points ("" when it can have them).
std::string ineligible(const LayerInfo& L, const QuantizedWeight& qw, const Graph& g, bool grouped) {
  if (qw.embed != EmbedScheme::kNone) return "embedding table (row-wise schemes)";
  if (L.op != "Conv" && L.op != "Gemm" && L.op != "MatMul") return L.op + " layer";
  if (qw.scheme.bits > 8) return std::to_string(qw.scheme.bits) + "-bit weights";
  if (qw.scheme.granularity == Granularity::kPerGroup) return "per-group weights";
  if (L.op == "Conv" && !grouped) {
    // Packed, a grouped convolution's extra channels make every group wider (a depthwise layer
    // gets a channel multiplier), which leaves the runtime's depthwise kernel: measured 21x slower
    // on the MobileNetV2 fixture (BENCHMARKS.md "Multipoint").
    for (const auto& n : g.nodes)
      if (n.name == L.node && n.attr("group") && n.attr("group")->i > 1)
        return "grouped convolution (--mp-grouped includes it; slow in the packed runtime)";
  }
  if (L.op == "MatMul" && (L.weight_input != 1 || L.weight_shape.size() != 2))
    return "MatMul whose weight is not a [K, N] right operand";
  if (L.op == "Gemm" && !L.bias.empty()) {
    const int64_t n = g.initializers.at(L.bias).numel();
    const int64_t out = L.weight_shape[static_cast<size_t>(L.channel_axis)];
    if (n != 1 && n != out) return "Gemm bias that is not one value per output";
  }
  return "";
}

double sum_of(const at::Tensor& t) { return t.sum().item<double>(); }

class Measure {
 public:
  Measure(ReconModel& rm, const Dataset& data, int64_t batch) : rm_(rm), data_(data), batch_(batch) {}

  // For each layer and each of its weight-shaped `deltas`: per output channel, the sum over the
  // samples of op(x, delta)^2 (the layer's bias zeroed), x the layer's float input.
  std::vector<std::vector<at::Tensor>> run(const std::vector<MpLayer*>& layers,
                                           const std::vector<std::vector<at::Tensor>>& deltas, const std::string& label,
                                           bool progress) {
    at::NoGradGuard ng;
    std::vector<std::string> inputs;
    for (const auto* L : layers) inputs.push_back(L->info.input);
    std::vector<std::vector<at::Tensor>> sums(layers.size());
    // op(x, delta) alone: the layers read zero biases for the whole measurement.
    for (const auto* L : layers)
      if (!L->info.bias.empty())
        rm_.set_bias(L->info.node, at::zeros_like(rm_.qmodel().graph.initializers.at(L->info.bias)));
    std::optional<Progress> bar;
    if (progress) bar.emplace(label, data_.size(), "samples");
    for (int64_t b = 0; b < data_.size() && !interrupted(); b += batch_) {
      const int64_t e = std::min(data_.size(), b + batch_);
      auto got = rm_.fp().run(rm_.feeds(data_.get(b, e)), inputs);
      for (size_t i = 0; i < layers.size(); ++i) {
        const MpLayer& L = *layers[i];
        const at::Tensor& x = got.at(L.info.input);
        for (size_t k = 0; k < deltas[i].size(); ++k) {
          rm_.set_weight(L.info.node, deltas[i][k]);
          at::Tensor y = rm_.quant().run({{L.info.input, x}}, {L.info.output}).at(L.info.output);
          const int64_t ax = L.out_axis < 0 ? L.out_axis + y.dim() : L.out_axis;
          at::Tensor s = y.to(at::kDouble).pow(2).movedim(ax, 0).reshape({y.size(ax), -1}).sum(1);
          if (sums[i].size() <= k) sums[i].push_back(s);
          else sums[i][k] += s;
        }
      }
      if (bar) bar->advance(e - b);
    }
    for (const auto* L : layers) {
      rm_.set_weight(L->info.node, at::Tensor());
      if (!L->info.bias.empty()) rm_.set_bias(L->info.node, at::Tensor());
    }
    return sums;
  }

 private:
  ReconModel& rm_;
  const Dataset& data_;
  int64_t batch_;
};

// The weight the layer would have with its residual reduced by `rows` (weight-shaped, its dtype).
at::Tensor delta_weight(const MpLayer& L, const at::Tensor& rows, const at::Tensor& like) {
  return from_channel_rows(rows, like.sizes(), L.qw->extra_axis).to(like.scalar_type());
}

}  // namespace

void refine_multipoint(MethodContext& ctx) {
  install_interrupt_handler();
  const ReconOptions& o = ctx.opts;
  MIXQ_CHECK(o.mp_extra >= 0 && std::isfinite(o.mp_extra), ErrorKind::kInvalidArgument,
             "--mp-extra must be a fraction >= 0 of the output channels (got ", o.mp_extra, ")");
  MIXQ_CHECK(o.mp_rounds >= 1 && o.mp_max_points >= 1 && o.mp_samples >= 1, ErrorKind::kInvalidArgument,
             "--mp-rounds, --mp-max-points and --mp-samples must be >= 1");
  const auto t0 = Clock::now();
  nlohmann::json& rep = ctx.report;
  QuantizedModel& qm = ctx.qm;
  ReconModel rm(qm);
  rm.quant().set_grad_enabled(false);

  std::vector<MpLayer> layers;
  nlohmann::json skipped = nlohmann::json::object();
  int64_t channels = 0;
  for (const auto& info : quantized_layers(ctx)) {
    QuantizedWeight& qw = rm.weight(info.node);
    const std::string why = ineligible(info, qw, qm.graph, o.mp_grouped);
    if (!why.empty()) {
      skipped[info.node] = why;
      continue;
    }
    MpLayer L;
    L.info = info;
    L.qw = &qw;
    L.out_axis = info.op == "MatMul" ? -1 : 1;
    qw.extra.clear();
    qw.extra_axis = info.channel_axis;
    const at::Tensor& w = qm.graph.initializers.at(info.weight);
    L.residual = channel_rows(w, qw.extra_axis) - channel_rows(dequantize_weight(qw), qw.extra_axis);
    L.points.assign(static_cast<size_t>(L.residual.size(0)), 0);
    channels += L.residual.size(0);
    layers.push_back(std::move(L));
  }
  const int64_t budget = std::llround(o.mp_extra * static_cast<double>(channels));
  rep["eligible_channels"] = channels;
  rep["budget_points"] = budget;
  rep["skipped"] = skipped;
  auto subset = head_dataset(ctx.calib, o.mp_samples);
  rep["samples"] = subset->size();
  if (layers.empty() || budget == 0) {
    method_say(o, "multipoint: %s", layers.empty() ? "no layer can take extra points" : "a budget of 0 extra points");
    rep["points"] = 0;
    rep["seconds"] = since(t0);
    return;
  }
  Measure measure(rm, *subset, 16);

  // Round 0: every layer's output energy, error now and error with its first candidate point.
  std::vector<MpLayer*> all;
  std::vector<std::vector<at::Tensor>> deltas;
  for (auto& L : layers) {
    all.push_back(&L);
    const at::Tensor& w = qm.graph.initializers.at(L.info.weight);
    L.cand = fit_points(L.residual, L.qw->scheme);
    deltas.push_back({w, delta_weight(L, L.residual, w), delta_weight(L, L.residual - point_rows(L.cand, L.qw->scheme), w)});
  }
  auto sums = measure.run(all, deltas, "multipoint: output errors", o.progress);
  for (size_t i = 0; i < layers.size(); ++i) {
    MpLayer& L = layers[i];
    const double energy = sum_of(sums[i][0]) / static_cast<double>(sums[i][0].numel());
    L.norm = energy > 0 ? energy : 1.0;
    L.err = sums[i][1];
    L.err_cand = sums[i][2];
    L.err_start = sum_of(L.err) / L.norm;
  }

  int64_t added = 0;
  nlohmann::json rounds = nlohmann::json::array();
  for (int r = 0; r < o.mp_rounds && added < budget && !interrupted(); ++r) {
    const int64_t quota = (budget - added + (o.mp_rounds - r) - 1) / (o.mp_rounds - r);
    struct Pick {
      double key;
      size_t layer;
      int64_t c;
    };
    std::vector<Pick> picks;
    for (size_t i = 0; i < layers.size(); ++i) {
      const MpLayer& L = layers[i];
      const double* e = L.err.data_ptr<double>();
      const double* ec = L.err_cand.data_ptr<double>();
      for (int64_t c = 0; c < L.err.numel(); ++c) {
        const double key = e[c] / L.norm;
        if (L.points[static_cast<size_t>(c)] < o.mp_max_points && ec[c] < e[c] && key > o.mp_threshold)
          picks.push_back({key, i, c});
      }
    }
    if (picks.empty()) break;
    const size_t take_n = std::min(picks.size(), static_cast<size_t>(quota));
    std::partial_sort(picks.begin(), picks.begin() + static_cast<std::ptrdiff_t>(take_n), picks.end(),
                      [](const Pick& a, const Pick& b) { return a.key > b.key; });
    std::vector<at::Tensor> take(layers.size());
    for (size_t k = 0; k < take_n; ++k) {
      const Pick& p = picks[k];
      if (!take[p.layer].defined()) take[p.layer] = at::zeros({layers[p.layer].err.numel()}, at::kBool);
      take[p.layer][p.c] = true;
    }
    std::vector<MpLayer*> touched;
    deltas.clear();
    for (size_t i = 0; i < layers.size(); ++i) {
      if (!take[i].defined()) continue;
      MpLayer& L = layers[i];
      add_points(*L.qw, L.cand, take[i]);
      const at::Tensor t = take[i];
      L.residual = at::where(t.unsqueeze(1), L.residual - point_rows(L.cand, L.qw->scheme), L.residual);
      L.err = at::where(t, L.err_cand, L.err);
      const bool* tk = t.data_ptr<bool>();
      for (int64_t c = 0; c < t.numel(); ++c) L.points[static_cast<size_t>(c)] += tk[c] ? 1 : 0;
      touched.push_back(&L);
    }
    added += static_cast<int64_t>(take_n);
    method_say(o, "multipoint: round %d: %lld points on %zu layers (%lld of %lld)", r + 1, static_cast<long long>(take_n),
        touched.size(), static_cast<long long>(added), static_cast<long long>(budget));
    rounds.push_back({{"points", take_n}, {"layers", touched.size()}, {"largest_error", picks.front().key}});
    if (added >= budget || r + 1 == o.mp_rounds) break;
    for (auto* L : touched) {
      const at::Tensor& w = qm.graph.initializers.at(L->info.weight);
      L->cand = fit_points(L->residual, L->qw->scheme);
      deltas.push_back({delta_weight(*L, L->residual - point_rows(L->cand, L->qw->scheme), w)});
    }
    auto s = measure.run(touched, deltas, "multipoint: next candidates", o.progress);
    for (size_t i = 0; i < touched.size(); ++i) touched[i]->err_cand = s[i][0];
  }

  nlohmann::json per_layer = nlohmann::json::object();
  for (const auto& L : layers) {
    const int64_t n = extra_point_count(*L.qw);
    if (n == 0) continue;
    per_layer[L.info.node] = {{"points", n},
                              {"channels", L.err.numel()},
                              {"levels", L.qw->extra.size()},
                              {"rel_error_before", L.err_start},
                              {"rel_error_after", sum_of(L.err) / L.norm}};
  }
  rep["points"] = added;
  rep["rounds"] = rounds;
  rep["layers"] = per_layer;
  rep["seconds"] = since(t0);
  method_say(o, "multipoint: %lld extra points (%.1f%% of %lld output channels) on %zu layers, %.1f s",
      static_cast<long long>(added), 100.0 * static_cast<double>(added) / static_cast<double>(channels),
      static_cast<long long>(channels), per_layer.size(), since(t0));
  if (interrupted()) ctx.interrupted = true;
}

}  // namespace mixq
