#include "search/probe.h"

#include <ATen/ATen.h>

#include "exec/executor.h"
#include "mixq/error.h"
#include "quant/qdq.h"
#include "quant/quantize.h"
#include "quant/quantizer.h"

namespace mixq {

namespace {

// The probe's samples as a dataset (activation calibration reads a Dataset).
class BatchesDataset : public Dataset {
 public:
  explicit BatchesDataset(const std::vector<Batch>& b) : b_(b) {
    for (const auto& x : b_) n_ += x.inputs[0].size(0);
  }
  int64_t size() const override { return n_; }
  bool has_labels() const override { return !b_.empty() && b_[0].labels.defined(); }
  Batch get(int64_t begin, int64_t end) const override {
    Batch out;
    std::vector<std::vector<at::Tensor>> ins(b_.empty() ? 0 : b_[0].inputs.size());
    std::vector<at::Tensor> labels;
    int64_t at0 = 0;
    for (const auto& x : b_) {
      const int64_t n = x.inputs[0].size(0), lo = std::max(begin, at0), hi = std::min(end, at0 + n);
      if (lo < hi) {
        for (size_t i = 0; i < ins.size(); ++i) ins[i].push_back(x.inputs[i].slice(0, lo - at0, hi - at0));
        if (x.labels.defined()) labels.push_back(x.labels.slice(0, lo - at0, hi - at0));
      }
      at0 += n;
    }
    for (auto& v : ins) out.inputs.push_back(v.size() == 1 ? v[0] : at::cat(v));
    if (!labels.empty()) out.labels = labels.size() == 1 ? labels[0] : at::cat(labels);
    return out;
  }
  std::string describe() const override { return "sensitivity probe samples"; }

 private:
  const std::vector<Batch>& b_;
  int64_t n_ = 0;
};

}  // namespace

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
  for (auto& b : batches_) zs.push_back(ex.run(b.inputs)[0].to(at::kFloat));
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
  BatchesDataset data(batches_);
  QuantizeOptions qo;
  qo.batch_size = batches_.empty() ? 1 : batches_[0].inputs[0].size(0);
  qo.progress = false;
  calibrate_activations(q, p, data, qo);
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
