#include "quant/methods/lapq_model.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "quant/methods/calib_loss.h"
#include "quant/methods/recon_loop.h"
#include "quant/quantize.h"
#include "quant/quantizer.h"
#include "exec/evaluate.h"

namespace mixq {

namespace {
constexpr double kNotApplied = std::numeric_limits<double>::quiet_NaN();
}  // namespace

LapqModel::LapqModel(MethodContext& ctx, const Dataset& subset) : ctx_(ctx) {
  QuantizedModel& qm = ctx.qm;
  const ReconOptions& o = ctx.opts;
  QuantizeOptions qo;
  qo.batch_size = o.calib_batch;
  qo.progress = o.progress;
  // Histograms once, on the model as the method row's estimators quantized it: every p reads them.
  observers_ = observe_activations(qm, ctx.plan, subset, qo, /*histogram=*/true);
  rm_ = std::make_unique<ReconModel>(qm);

  const std::set<std::string> pinned = pinned_layers(ctx.plan);
  std::set<std::string> joint_acts;  // read by an unpinned layer that quantizes its input
  for (const auto& L : ctx.plan.layers)
    if (L.quantize_input && !L.pinned) joint_acts.insert(L.input);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  for (size_t i = 0; i < qm.weights.size(); ++i) {
    const QuantizedWeight& qw = qm.weights[i];
    Clip c;
    c.name = qw.node;
    c.scheme = qw.scheme;
    c.index = i;
    c.w = qm.graph.initializers.at(qw.weight).to(at::kFloat);
    // One draw for the whole search, so every evaluation and the exported codes agree.
    if (qw.scheme.rounding == Rounding::kStochastic) c.noise = at::rand(c.w.sizes(), gen);
    c.applied = kNotApplied;
    if (!pinned.count(c.name)) joint_.push_back(clips_.size());
    clips_.push_back(std::move(c));
  }
  for (const auto& a : qm.activations) {
    Clip c;
    c.weight = false;
    c.name = a.tensor;
    c.scheme = a.scheme;
    c.act = rm_->act(a.tensor);
    MIXQ_ASSERT(c.act != nullptr, "no activation quantizer for ", a.tensor);
    c.act->enabled = true;
    c.applied = kNotApplied;
    if (joint_acts.count(c.name)) joint_.push_back(clips_.size());
    clips_.push_back(std::move(c));
  }

  // The subset's inputs, labels and float outputs, once.
  at::NoGradGuard ng;
  std::vector<at::Tensor> zf, labels;
  for (int64_t b = 0; b < subset.size(); b += o.calib_batch) {
    Batch batch = subset.get(b, std::min(subset.size(), b + o.calib_batch));
    bool classes = true;
    zf.push_back(comparable_outputs(rm_->fp().run(batch.inputs), &classes, qm.graph.source_path));
    classes_ = classes_ && classes;
    if (batch.labels.defined()) labels.push_back(batch.labels);
    inputs_.push_back(std::move(batch.inputs));
  }
  zf_ = at::cat(zf);
  // Cross-entropy needs labels for every sample and class scores to apply them to.
  if (classes_ && labels.size() == zf.size()) labels_ = at::cat(labels);
}

std::vector<std::string> LapqModel::dim_names() const {
  std::vector<std::string> n;
  for (size_t i : joint_) n.push_back((clips_[i].weight ? "weight:" : "act:") + clips_[i].name);
  return n;
}

void LapqModel::set_lp_init(double p) {
  p_ = p;
  RangeOptions ro;
  ro.method = RangeMethod::kMse;
  ro.lp = p;
  for (auto& c : clips_) {
    if (c.weight) {
      weight_range(c.w, c.scheme, ro, c.min, c.max);
    } else {
      auto [lo, hi] = histogram_range(observers_.at(c.name).histogram(), c.scheme, ro);
      c.min = at::scalar_tensor(lo, at::kFloat);
      c.max = at::scalar_tensor(hi, at::kFloat);
    }
    c.applied = kNotApplied;
  }
}

QParams LapqModel::params_of(const Clip& c, double logm) const {
  // One multiplier scales every channel's range of a per-channel weight: the channels keep their
  // Lp-optimal proportions, and the joint search stays one dimension per tensor.
  const double m = std::exp(logm);
  return params_from_range(c.min * m, c.max * m, c.scheme);
}

void LapqModel::apply(Clip& c, double logm) {
  if (c.applied == logm) return;  // unchanged since the last evaluation: nothing to requantize
  QParams p = params_of(c, logm);
  if (c.weight) {
    const at::Tensor& orig = ctx_.qm.graph.initializers.at(ctx_.qm.weights[c.index].weight);
    rm_->set_weight(c.name, fake_quantize(c.w, p, c.scheme, c.noise).to(orig.scalar_type()));
  } else {
    c.act->scale = p.scale.to(at::kFloat).reshape({});
    c.act->zero_point = p.zero_point.to(at::kFloat).reshape({});
  }
  c.applied = logm;
}

void LapqModel::set_point(const std::vector<double>& x) {
  MIXQ_ASSERT(x.empty() || x.size() == joint_.size(), "LAPQ: ", x.size(), " parameters for ", joint_.size(),
              " clipping ranges");
  MIXQ_ASSERT(!clips_.empty() && clips_[0].min.defined(), "LAPQ: set_lp_init before set_point");
  at::NoGradGuard ng;
  std::vector<double> logm(clips_.size(), 0.0);
  for (size_t k = 0; k < x.size(); ++k) logm[joint_[k]] = x[k];
  for (size_t i = 0; i < clips_.size(); ++i) apply(clips_[i], logm[i]);
}

double LapqModel::loss(const std::vector<double>& x) {
  set_point(x);
  at::NoGradGuard ng;
  std::vector<at::Tensor> z;
  for (const auto& in : inputs_) {
    bool classes = true;
    z.push_back(comparable_outputs(rm_->quant().run(in), &classes, ctx_.qm.graph.source_path));
  }
  ++evals_;
  return calibration_loss(zf_, at::cat(z), classes_, labels_);
}

int LapqModel::bias_correct() {
  at::NoGradGuard ng;
  undo_bias_correction();
  // Unpinned Conv / Gemm layers with an initializer bias, and the input each reads in quant()
  // (the quantized activation where there is one).
  struct Target {
    const Clip* clip;
    const Node* node;
    std::string input;
  };
  std::vector<Target> targets;
  std::vector<std::string> inputs;
  for (const auto& n : rm_->quant().graph().nodes) {
    if ((n.op_type != "Conv" && n.op_type != "Gemm") || rm_->bias_name(n.name).empty() || n.inputs.empty()) continue;
    for (size_t i : joint_)
      if (clips_[i].weight && clips_[i].name == n.name) {
        targets.push_back({&clips_[i], &n, n.inputs[0]});
        inputs.push_back(n.inputs[0]);
      }
  }
  // E[x] per input channel (axis 1) of every target's input over the subset, from one pass.
  std::vector<at::Tensor> sum(targets.size());
  std::vector<double> count(targets.size(), 0);
  for (const auto& in : inputs_) {
    auto got = rm_->quant().run(rm_->feeds(Batch{in, {}}), inputs);
    for (size_t i = 0; i < targets.size(); ++i) {
      at::Tensor x = got.at(targets[i].input).to(at::kDouble);
      std::vector<int64_t> axes;
      for (int64_t a = 0; a < x.dim(); ++a)
        if (a != 1) axes.push_back(a);
      at::Tensor s = x.sum(axes);
      sum[i] = sum[i].defined() ? sum[i] + s : s;
      count[i] += static_cast<double>(x.numel() / x.size(1));
    }
  }
  int changed = 0;
  for (size_t i = 0; i < targets.size(); ++i) {
    const Clip& c = *targets[i].clip;
    const Node& n = *targets[i].node;
    const at::Tensor ex = sum[i] / count[i];  // [C_in]
    // The weight error of the current clipping: dW = W - DQ(Q(W)).
    const at::Tensor dw = (c.w - fake_quantize(c.w, params_of(c, c.applied), c.scheme, c.noise)).to(at::kDouble);
    at::Tensor shift;  // E[dW x] per output channel (what the quantized weight loses on average)
    if (n.op_type == "Conv") {
      // Conv weight [O, C_in / g, k...]: taps summed; output channel o reads group o / (O / g).
      // Padding is ignored (border outputs see fewer inputs): the correction is for the mean.
      const Attribute* ga = n.attr("group");
      const int64_t g = ga ? ga->i : 1, O = dw.size(0), cin_g = dw.size(1);
      if (ex.numel() != g * cin_g || O % g != 0) continue;
      at::Tensor taps = dw.reshape({O, cin_g, -1}).sum(2);                          // [O, C_in / g]
      at::Tensor exg = ex.reshape({g, cin_g}).repeat_interleave(O / g, 0);          // [O, C_in / g]
      shift = (taps * exg).sum(1);
    } else {
      // Gemm y = alpha A B' + beta C with A = the input [N, K] (transA = 0 only).
      const Attribute* ta = n.attr("transA");
      const Attribute* tb = n.attr("transB");
      const Attribute* al = n.attr("alpha");
      const Attribute* be = n.attr("beta");
      if ((ta && ta->i != 0) || dw.dim() != 2) continue;
      const at::Tensor b = tb && tb->i != 0 ? dw : dw.t();  // [N_out, K]
      if (b.size(1) != ex.numel()) continue;
      const double alpha = al ? al->f : 1.0, beta = be ? be->f : 1.0;
      if (beta == 0) continue;
      shift = b.matmul(ex) * (alpha / beta);
    }
    const std::string& bname = rm_->bias_name(n.name);
    const at::Tensor& b0 = ctx_.qm.graph.initializers.at(bname);
    if (shift.numel() != b0.numel()) continue;  // not one bias per output channel
    at::Tensor b = (b0.to(at::kDouble) + shift.reshape(b0.sizes())).to(b0.scalar_type());
    rm_->set_bias(n.name, b);
    bias_after_[bname] = {n.name, b};
    ++changed;
  }
  return changed;
}

void LapqModel::undo_bias_correction() {
  for (const auto& [bname, lb] : bias_after_) rm_->set_bias(lb.first, ctx_.qm.graph.initializers.at(bname));
  bias_after_.clear();
}

void LapqModel::write_back() {
  at::NoGradGuard ng;
  QuantizedModel& qm = ctx_.qm;
  for (auto& c : clips_) {
    const double logm = std::isnan(c.applied) ? 0.0 : c.applied;
    QParams p = params_of(c, logm);
    if (c.weight) {
      QuantizedWeight& qw = qm.weights[c.index];
      qw.codes = quantize(c.w, p, c.scheme, c.noise).reshape(qw.codes.sizes()).contiguous();
      qw.params = p;
    } else {
      for (auto& a : qm.activations)
        if (a.tensor == c.name) a.params = p;
    }
  }
  for (const auto& [bname, lb] : bias_after_) qm.graph.initializers[bname] = lb.second;
  bias_after_.clear();
}

}  // namespace mixq
