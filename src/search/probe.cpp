#include "search/probe.h"

#include <ATen/ATen.h>

#include "exec/executor.h"
#include "mixq/error.h"
#include "quant/qdq.h"
#include "quant/quantize.h"
#include "quant/quantizer.h"

namespace mixq {

at::Tensor requantized_weight(const at::Tensor& w, const LayerPlan& L, int bits) {
  QScheme s = L.weight_scheme;
  s.bits = bits;
  if (s.rounding == Rounding::kStochastic) s.rounding = Rounding::kNearest;
  RangeOptions ro;
  ro.method = L.weight_range == RangeMethod::kKl ? RangeMethod::kMinMax : L.weight_range;
  QParams p = weight_params(w, s, ro);
  return dequantize(quantize(w, p, s), p, s).reshape(w.sizes());
}

SensitivityProbe::SensitivityProbe(const Graph& prepared, const QuantPlan& ref, const Dataset& samples,
                                   int64_t batch_size)
    : prepared_(prepared), ref_plan_(ref), samples_(samples.size()) {
  MIXQ_CHECK(samples_ > 0, ErrorKind::kInvalidArgument, "the sensitivity measurement needs calibration samples, got none");
  for (int64_t b = 0; b < samples_; b += batch_size) batches_.push_back(samples.get(b, std::min(samples_, b + batch_size)));
  std::vector<at::Tensor> lab;
  for (auto& b : batches_)
    if (b.labels.defined()) lab.push_back(b.labels);
  if (lab.size() == batches_.size()) labels_ = at::cat(lab);
  Executor fex(prepared);
  std::vector<at::Tensor> zs;
  for (auto& b : batches_) zs.push_back(fex.run(b.inputs)[0].to(at::kFloat));
  zf_ = at::cat(zs);
  QuantizeOptions qo;
  qo.batch_size = batch_size;
  qo.progress = false;
  QuantizedModel qm = quantize_model(prepared, ref, samples, qo);
  Graph qg = qdq_graph(qm);
  for (const auto& L : ref.layers) {
    const Node* orig = nullptr;
    for (const auto& n : prepared.nodes)
      if (n.name == L.name) orig = &n;
    MIXQ_ASSERT(orig, "layer ", L.name, " not in graph");
    size_t wi = 0;
    while (wi < orig->inputs.size() && orig->inputs[wi] != L.weight) ++wi;
    for (const auto& n : qg.nodes)
      if (n.name == L.name && wi < n.inputs.size()) dq_name_[L.name] = n.inputs[wi];
  }
  sim_ = std::make_unique<Executor>(qg);
  float_ = metrics_of(zf_);
  ref_ = metrics_of(logits());
}

SensitivityProbe::~SensitivityProbe() = default;

ProbeMetrics SensitivityProbe::metrics_of(const at::Tensor& z) const {
  ProbeMetrics m;
  at::Tensor zd = z.to(at::kDouble), zfd = zf_.to(at::kDouble);
  double sig = zfd.pow(2).sum().item<double>();
  m.noise = (zd - zfd).pow(2).sum().item<double>() / std::max(sig, 1e-30);
  at::Tensor lpf = at::log_softmax(zfd, 1), lq = at::log_softmax(zd, 1);
  m.kl = (lpf.exp() * (lpf - lq)).sum(1).mean().item<double>();
  if (labels_.defined()) {
    m.loss = at::nll_loss(lq, labels_).item<double>();
    m.top1 = 100.0 * zd.argmax(1).eq(labels_).to(at::kDouble).mean().item<double>();
  }
  return m;
}

at::Tensor SensitivityProbe::logits() {
  std::vector<at::Tensor> zs;
  for (auto& b : batches_) zs.push_back(sim_->run(b.inputs)[0].to(at::kFloat));
  return at::cat(zs);
}

ProbeMetrics SensitivityProbe::run(const std::map<std::string, at::Tensor>& weights) {
  std::vector<int> ids;
  for (const auto& [layer, w] : weights) {
    auto it = dq_name_.find(layer);
    MIXQ_CHECK(it != dq_name_.end(), ErrorKind::kInvalidArgument, "sensitivity probe: no layer '", layer, "'");
    at::Tensor repl = w.to(prepared_.initializers.at(ref_plan_.find(layer)->weight).scalar_type());
    ids.push_back(sim_->add_hook(it->second, [repl](const std::string&, at::Tensor& v) { v = repl; }));
  }
  ProbeMetrics m;
  try {
    m = metrics_of(logits());
  } catch (...) {
    for (int id : ids) sim_->remove_hook(id);
    throw;
  }
  for (int id : ids) sim_->remove_hook(id);
  return m;
}

ProbeMetrics SensitivityProbe::run_bits(const std::map<std::string, int>& bits) {
  std::map<std::string, at::Tensor> w;
  for (const auto& [layer, b] : bits) {
    const LayerPlan* L = ref_plan_.find(layer);
    MIXQ_CHECK(L, ErrorKind::kInvalidArgument, "sensitivity probe: no layer '", layer, "'");
    if (b == L->weight_scheme.bits) continue;  // the reference already
    w[layer] = requantized_weight(prepared_.initializers.at(L->weight).to(at::kFloat), *L, b);
  }
  return run(w);
}

}  // namespace mixq
