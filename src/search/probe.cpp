#include "search/probe.h"

#include <ATen/ATen.h>

#include "exec/evaluate.h"
#include "exec/executor.h"
#include "mixq/error.h"
#include "quant/qdq.h"
#include "quant/quantize.h"
#include "quant/quantizer.h"

namespace mixq {

at::Tensor requantized_weight(const at::Tensor& w, const LayerPlan& L, int bits) {
  QScheme s = L.weight_scheme;
  s.bits = bits;
  return requantized_weight(w, L, s);
}

at::Tensor requantized_weight(const at::Tensor& w, const LayerPlan& L, const QScheme& scheme) {
  QScheme s = scheme;
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
  Executor fex(prepared);
  zf_ = logits(fex);
  // Labels count only for class scores: a detector's or an embedding's outputs are compared with
  // the float outputs alone (the fidelity loss), labels or not.
  std::vector<at::Tensor> lab;
  for (auto& b : batches_)
    if (b.labels.defined()) lab.push_back(b.labels);
  if (lab.size() == batches_.size() && classes_) labels_ = at::cat(lab);
  QuantizeOptions qo;
  qo.batch_size = batch_size;
  qo.progress = false;
  qm_ = quantize_model(prepared, ref, samples, qo);
  Graph qg = qdq_graph(qm_);
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
  for (const auto& L : ref.layers)
    if (L.quantize_input) readers_[L.input].push_back(L.name);
  sim_ = std::make_unique<Executor>(qg);
  float_ = metrics_of(zf_);
  ref_ = metrics_of(logits(*sim_));
}

SensitivityProbe::~SensitivityProbe() = default;

ProbeMetrics SensitivityProbe::metrics_of(const at::Tensor& z) const {
  ProbeMetrics m;
  at::Tensor zd = z.to(at::kDouble), zfd = zf_.to(at::kDouble);
  double sig = zfd.pow(2).sum().item<double>();
  m.noise = (zd - zfd).pow(2).sum().item<double>() / std::max(sig, 1e-30);
  if (!classes_) {
    m.kl = m.noise;  // no class distribution to compare: the fidelity loss stands in for KL
    return m;
  }
  at::Tensor lpf = at::log_softmax(zfd, 1), lq = at::log_softmax(zd, 1);
  m.kl = (lpf.exp() * (lpf - lq)).sum(1).mean().item<double>();
  if (labels_.defined()) {
    m.loss = at::nll_loss(lq, labels_).item<double>();
    m.top1 = 100.0 * zd.argmax(1).eq(labels_).to(at::kDouble).mean().item<double>();
  }
  return m;
}

at::Tensor SensitivityProbe::logits(Executor& ex) {
  std::vector<at::Tensor> zs;
  for (auto& b : batches_) {
    std::vector<at::Tensor> outs = ex.run(b.inputs);
    const at::Tensor& z0 = outs.at(0);
    if (outs.size() == 1 && looks_like_class_scores(z0)) {
      zs.push_back(z0.to(at::kFloat));
      continue;
    }
    // Any other model: every float output, batch-first, flattened per sample side by side.
    classes_ = false;
    std::vector<at::Tensor> parts;
    for (const auto& z : outs)
      if (at::isFloatingType(z.scalar_type()) && z.dim() >= 1 && z.size(0) == z0.size(0))
        parts.push_back(z.to(at::kFloat).reshape({z.size(0), -1}));
    MIXQ_CHECK(!parts.empty(), ErrorKind::kUnsupported, prepared_.source_path,
               ": no float batch-first output to measure sensitivity on");
    zs.push_back(at::cat(parts, 1));
  }
  return at::cat(zs);
}

ProbeMetrics SensitivityProbe::run(const std::map<std::string, at::Tensor>& weights) { return run_on(*sim_, weights); }

ProbeMetrics SensitivityProbe::run_on(Executor& ex, const std::map<std::string, at::Tensor>& weights) {
  std::vector<int> ids;
  for (const auto& [layer, w] : weights) {
    auto it = dq_name_.find(layer);
    MIXQ_CHECK(it != dq_name_.end(), ErrorKind::kInvalidArgument, "sensitivity probe: no layer '", layer, "'");
    at::Tensor repl = w.to(prepared_.initializers.at(ref_plan_.find(layer)->weight).scalar_type());
    ids.push_back(ex.add_hook(it->second, [repl](const std::string&, at::Tensor& v) { v = repl; }));
  }
  ProbeMetrics m;
  try {
    m = metrics_of(logits(ex));
  } catch (...) {
    for (int id : ids) ex.remove_hook(id);
    throw;
  }
  for (int id : ids) ex.remove_hook(id);
  return m;
}

const std::map<std::string, QuantizedActivation>& SensitivityProbe::acts_at(int bits) {
  auto it = acts_at_.find(bits);
  if (it != acts_at_.end()) return it->second;
  QuantPlan p = ref_plan_;
  for (auto& L : p.layers)
    if (L.quantize_input) L.input_scheme.bits = bits;
  QuantizedModel q = qm_;
  // The probe's samples as one in-memory dataset (activation calibration reads a Dataset).
  std::vector<std::vector<at::Tensor>> ins(batches_.empty() ? 0 : batches_[0].inputs.size());
  for (const auto& b : batches_)
    for (size_t i = 0; i < ins.size(); ++i) ins[i].push_back(b.inputs[i]);
  std::vector<at::Tensor> inputs;
  for (auto& v : ins) inputs.push_back(at::cat(v));
  auto data = memory_dataset(std::move(inputs), labels_, "sensitivity probe samples");
  QuantizeOptions qo;
  qo.batch_size = batches_.empty() ? 1 : batches_[0].inputs[0].size(0);
  qo.progress = false;
  calibrate_activations(q, p, *data, qo);
  auto& out = acts_at_[bits];
  for (auto& a : q.activations) out[a.tensor] = std::move(a);
  return out;
}

ProbeMetrics SensitivityProbe::run_change(const ProbeChange& change) {
  std::map<std::string, at::Tensor> w;
  for (const auto& [layer, s] : change.weights) {
    const LayerPlan* L = ref_plan_.find(layer);
    MIXQ_CHECK(L, ErrorKind::kInvalidArgument, "sensitivity probe: no layer '", layer, "'");
    if (s == L->weight_scheme) continue;  // the reference already
    w[layer] = requantized_weight(prepared_.initializers.at(L->weight).to(at::kFloat), *L, s);
  }
  std::map<std::string, const QuantizedActivation*> swap;
  for (const auto& [tensor, bits] : change.acts) {
    MIXQ_CHECK(readers_.count(tensor), ErrorKind::kInvalidArgument, "sensitivity probe: no quantized activation '",
               tensor, "'");
    const auto& at_b = acts_at(bits);
    swap[tensor] = &at_b.at(tensor);
  }
  bool same = true;
  for (const auto& a : qm_.activations)
    if (auto it = swap.find(a.tensor); it != swap.end() && it->second->scheme.bits != a.scheme.bits) same = false;
  if (same) return run_on(*sim_, w);
  QuantizedModel q = qm_;
  for (auto& a : q.activations)
    if (auto it = swap.find(a.tensor); it != swap.end()) a = *it->second;
  Executor ex(qdq_graph(q));
  return run_on(ex, w);
}

}  // namespace mixq
