// BatchNorm re-estimation (seed 003, AdaQuant's pipeline): restore the BN layers that prepare
// folded, recompute their statistics on calibration data through the quantized model, fold
// again. Done in folded form: a layer with folded BN computes y = Wq x + b', Wq = W~ f and
// b' = (b - mean) f + beta, f = gamma / sqrt(var + eps). Its pre-BN output is u = (y - b') / f
// (up to the constant b). In one pass over the calibration set, with every earlier BN already
// normalising by its batch statistics (train-mode BN, as PyTorch's re-estimation runs), hooks
// collect the per-channel mean m and variance v of u; then
//   f_new = gamma / sqrt(v + eps),  Wq_new = Wq * (f_new / f),  b_new = beta - f_new * m.
// The ratio f_new / f is positive and per output channel, so a per-channel (or per-group)
// weight quantizer keeps its integer codes and only its scales change: nothing is re-rounded.
// Per-tensor weight quantizers cannot absorb a per-channel factor; those layers are skipped
// (reported).
#include <ATen/ATen.h>

#include <map>

#include "core/log.h"
#include "core/progress.h"
#include "exec/executor.h"
#include "quant/methods/method.h"
#include "quant/qdq.h"
#include "quant/sparq_apply.h"

namespace mixq {

void bn_reestimate(MethodContext& ctx) {
  QuantizedModel& qm = ctx.qm;
  struct Stat {
    const FoldedBn* bn;
    QuantizedWeight* w;
    std::string bias, output;
    int64_t axis;
    at::Tensor sum, sumsq;
    double count = 0;
  };
  std::map<std::string, Stat> stats;  // by layer output value
  nlohmann::json skipped = nlohmann::json::array();
  for (const auto& fb : ctx.folded) {
    QuantizedWeight* w = nullptr;
    for (auto& qw : qm.weights)
      if (qw.node == fb.layer) w = &qw;
    if (!w) continue;  // layer left in float
    const Node* node = nullptr;
    for (const auto& n : qm.graph.nodes)
      if (n.name == fb.layer) node = &n;
    if (!node || node->inputs.size() < 3 || node->inputs[2].empty()) continue;
    if (w->scheme.granularity == Granularity::kPerTensor) {
      skipped.push_back({{"layer", fb.layer}, {"reason", "per-tensor weight scale cannot absorb a per-channel BN factor"}});
      continue;
    }
    Stat s;
    s.bn = &fb;
    s.w = w;
    s.bias = node->inputs[2];
    s.output = node->outputs[0];
    s.axis = node->op_type == "Gemm" ? -1 : 1;
    stats[s.output] = s;
  }
  ctx.report["bn_reestimate_skipped"] = skipped;
  if (stats.empty()) {
    ctx.report["bn_reestimated"] = 0;
    return;
  }
  std::unique_ptr<Executor> sim = simulation_executor(qm);  // QDQ + SPARQ where the plan asks
  Executor& ex = *sim;
  for (auto& [name, st] : stats) {
    Stat* s = &st;
    const at::Tensor bias = qm.graph.initializers.at(s->bias).to(at::kFloat).reshape({-1});
    ex.add_hook(name, [s, bias](const std::string&, at::Tensor& y) {
      const int64_t axis = s->axis < 0 ? y.dim() - 1 : s->axis;
      std::vector<int64_t> view(static_cast<size_t>(y.dim()), 1);
      view[static_cast<size_t>(axis)] = -1;
      at::Tensor f = s->bn->factor.view(view);
      at::Tensor u = (y - bias.view(view)) / f;
      std::vector<int64_t> dims;
      for (int64_t d = 0; d < y.dim(); ++d)
        if (d != axis) dims.push_back(d);
      at::Tensor m = u.mean(dims), v = u.var(dims, /*unbiased=*/false);
      const double n = static_cast<double>(u.numel() / u.size(axis));
      at::Tensor su = u.to(at::kDouble).sum(dims), sq = u.to(at::kDouble).pow(2).sum(dims);
      s->sum = s->sum.defined() ? s->sum + su : su;
      s->sumsq = s->sumsq.defined() ? s->sumsq + sq : sq;
      s->count += n;
      // Train-mode BN downstream: normalise with this batch's statistics.
      at::Tensor f_b = s->bn->gamma / at::sqrt(v + s->bn->eps);
      y = (u - m.view(view)) * f_b.view(view) + s->bn->beta.view(view);
    });
  }
  Progress bar("bn re-estimation", ctx.opts.progress ? ctx.calib.size() : 0, "img");
  for (int64_t b = 0; b < ctx.calib.size(); b += ctx.opts.calib_batch) {
    int64_t e = std::min(ctx.calib.size(), b + ctx.opts.calib_batch);
    ex.run(ctx.calib.get(b, e).inputs);
    bar.advance(e - b);
  }
  bar.finish();
  nlohmann::json done = nlohmann::json::array();
  for (auto& [name, s] : stats) {
    if (!s.sum.defined()) continue;
    at::Tensor m = (s.sum / s.count).to(at::kFloat);
    at::Tensor v = (s.sumsq / s.count).to(at::kFloat) - m * m;
    v = at::clamp_min(v, 0.0);
    at::Tensor f_new = s.bn->gamma / at::sqrt(v + s.bn->eps);
    at::Tensor ratio = f_new / s.bn->factor;  // > 0: same sign as gamma in both
    QParams& p = s.w->params;
    std::vector<int64_t> view(static_cast<size_t>(p.scale.dim()), 1);
    if (s.w->scheme.granularity == Granularity::kPerGroup) {
      view = {ratio.numel(), 1};  // [C, G]
    } else {
      int64_t ax = s.w->scheme.axis < 0 ? s.w->scheme.axis + p.scale.dim() : s.w->scheme.axis;
      view[static_cast<size_t>(ax)] = ratio.numel();
    }
    p.scale = (p.scale.to(at::kFloat) * ratio.view(view)).to(p.scale.scalar_type());
    at::Tensor& b = qm.graph.initializers.at(s.bias);
    b = (s.bn->beta - f_new * m).reshape(b.sizes()).to(b.scalar_type());
    done.push_back({{"layer", s.bn->layer}, {"mean_abs_ratio_change", (ratio - 1).abs().mean().item<double>()}});
  }
  ctx.report["bn_reestimated"] = done;
  log::verbose("bn re-estimation: " + std::to_string(done.size()) + " layers refolded, " +
               std::to_string(skipped.size()) + " skipped");
}

}  // namespace mixq
