#include "search/probe.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <set>

#include "exec/evaluate.h"
#include "exec/executor.h"
#include "mixq/error.h"
#include "quant/qdq.h"
#include "quant/quantize.h"
#include "quant/embed_quant.h"
#include "quant/quantizer.h"

namespace mixq {

at::Tensor requantized_weight(const at::Tensor& w, const LayerPlan& L, int bits) {
  QScheme s = L.weight_scheme;
  s.bits = bits;
  return requantized_weight(w, L, s);
}

at::Tensor requantized_weight(const at::Tensor& w, const LayerPlan& L, const QScheme& scheme) {
  if (L.embed != EmbedScheme::kNone) {  // a row-wise table: its own scheme at these bits
    QuantizedWeight qw;
    quantize_table(w, L.embed, scheme.bits, qw, "layer '" + L.name + "'");
    return dequantize_weight(qw);
  }
  QScheme s = scheme;
  if (s.rounding == Rounding::kStochastic) s.rounding = Rounding::kNearest;
  RangeOptions ro;
  ro.method = L.weight_range == RangeMethod::kKl ? RangeMethod::kMinMax : L.weight_range;
  QParams p = weight_params(w, s, ro);
  return dequantize(quantize(w, p, s), p, s).reshape(w.sizes());
}

ProbeMetrics compare_to_float(const at::Tensor& zf, const at::Tensor& z, bool classes, const at::Tensor& labels) {
  ProbeMetrics m;
  at::Tensor zd = z.to(at::kDouble), zfd = zf.to(at::kDouble);
  double sig = zfd.pow(2).sum().item<double>();
  m.noise = (zd - zfd).pow(2).sum().item<double>() / std::max(sig, 1e-30);
  if (!classes) {
    m.kl = m.loss = m.noise;  // no class distribution: the fidelity loss stands in for KL and loss
    at::Tensor cos = (zd * zfd).sum(1) / (zd.norm(2, 1) * zfd.norm(2, 1)).clamp_min(1e-300);
    m.top1 = 100.0 * cos.mean().item<double>();
    return m;
  }
  at::Tensor lpf = at::log_softmax(zfd, 1), lq = at::log_softmax(zd, 1);
  m.kl = (lpf.exp() * (lpf - lq)).sum(1).mean().item<double>();
  if (labels.defined()) {
    m.loss = at::nll_loss(lq, labels).item<double>();
    m.top1 = 100.0 * zd.argmax(1).eq(labels).to(at::kDouble).mean().item<double>();
  } else {
    m.loss = m.kl;
    m.top1 = 100.0 * zd.argmax(1).eq(zfd.argmax(1)).to(at::kDouble).mean().item<double>();
  }
  return m;
}

int64_t probe_batch_size(Executor& ex, const Dataset& samples) {
  return auto_batch_size(ex, samples, kProbeMaxBatch);
}

SensitivityProbe::SensitivityProbe(const Graph& prepared, const QuantPlan& ref, const Dataset& samples,
                                   int64_t batch_size, int64_t cut_budget_bytes, std::string spill_dir)
    : prepared_(prepared),
      ref_plan_(ref),
      samples_(samples.size()),
      cut_budget_(cut_budget_bytes),
      spill_dir_(std::move(spill_dir)) {
  MIXQ_CHECK(samples_ > 0, ErrorKind::kInvalidArgument, "the sensitivity measurement needs calibration samples, got none");
  Executor fex(prepared);
  // Activation calibration in the probe's batches when they are given, else sized as quantize
  // sizes them (quant/quantize.h: at most kCalibMaxBatch, fewer where a batch-wide activation would
  // pass 32 MB: all 32 samples of a 224x224 ResNet-50 at once held 500 MB of activations). Ranges
  // and histograms do not depend on the batching.
  calib_batch_ = batch_size > 0 ? batch_size : 0;
  if (batch_size <= 0) batch_size = probe_batch_size(fex, samples);
  for (int64_t b = 0; b < samples_; b += batch_size) batches_.push_back(samples.get(b, std::min(samples_, b + batch_size)));
  zf_ = logits(fex);
  // Labels count only for class scores: a detector's or an embedding's outputs are compared with
  // the float outputs alone (the fidelity loss), labels or not.
  std::vector<at::Tensor> lab;
  for (auto& b : batches_)
    if (b.labels.defined()) lab.push_back(b.labels);
  if (lab.size() == batches_.size() && classes_) labels_ = at::cat(lab);
  QuantizeOptions qo;
  qo.batch_size = calib_batch_;
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
  for (size_t i = 0; i < qg.nodes.size(); ++i)
    if (ref.find(qg.nodes[i].name)) layer_node_[qg.nodes[i].name] = static_cast<int>(i);
  {
    std::set<std::string> st;
    for (const auto& kv : qg.initializers) st.insert(kv.first);
    sim_static_.assign(qg.nodes.size(), 0);
    for (size_t i = 0; i < qg.nodes.size(); ++i) {
      const Node& n = qg.nodes[i];
      bool all = std::all_of(n.inputs.begin(), n.inputs.end(), [&](const std::string& v) { return v.empty() || st.count(v); });
      if (all) {
        sim_static_[i] = 1;
        for (const auto& o : n.outputs) st.insert(o);
      }
    }
  }
  sim_ = std::make_unique<Executor>(qg);
  float_ = metrics_of(zf_);
  ref_ = metrics_of(logits(*sim_));
}

SensitivityProbe::~SensitivityProbe() = default;

ProbeMetrics SensitivityProbe::metrics_of(const at::Tensor& z) const { return compare_to_float(zf_, z, classes_, labels_); }

at::Tensor SensitivityProbe::flatten_outputs(const std::vector<at::Tensor>& outs) {
  bool classes = true;
  at::Tensor z = comparable_outputs(outs, &classes, prepared_.source_path);
  classes_ = classes_ && classes;
  return z;
}

at::Tensor SensitivityProbe::logits(Executor& ex, const std::map<std::string, at::Tensor>& extra) {
  // Through run(feeds, fetches) with the executor's fusion groups, like the runs from a cut (which
  // never splits a group, see cut_point): every measurement and its reference see the same float
  // arithmetic, so the table's increases over the reference do not pick up fused-vs-unfused
  // rounding.
  const Graph& g = ex.graph();
  std::vector<std::string> fetch;
  for (const auto& o : g.outputs) fetch.push_back(o.name);
  std::vector<at::Tensor> zs;
  for (auto& b : batches_) {
    std::map<std::string, at::Tensor> feeds;
    for (size_t i = 0; i < g.inputs.size(); ++i) feeds[g.inputs[i].name] = b.inputs[i];
    for (const auto& kv : extra) feeds[kv.first] = kv.second;
    std::map<std::string, at::Tensor> got = ex.run(feeds, fetch, /*fused=*/true);
    std::vector<at::Tensor> outs;
    for (const auto& f : fetch) outs.push_back(got.at(f));
    zs.push_back(flatten_outputs(outs));
  }
  return at::cat(zs);
}

int SensitivityProbe::cut_point(const std::map<std::string, at::Tensor>& weights) {
  if (weights.empty() || std::getenv("MIXQ_PROBE_FULL") != nullptr) return -1;
  int k = std::numeric_limits<int>::max();
  for (const auto& kv : weights) {
    auto it = layer_node_.find(kv.first);
    if (it == layer_node_.end()) return -1;
    k = std::min(k, it->second);
  }
  // Before any fusion group the cut would split: the nodes after a cut run fused only where the
  // group lies wholly after it, and the whole-model runs fuse every group.
  if (!spans_known_) {
    spans_ = sim_->active_fusion_spans();
    spans_known_ = true;
  }
  for (bool moved = true; moved;) {
    moved = false;
    for (const auto& [first, last] : spans_)
      if (first < k && k <= last) {
        k = first;
        moved = true;
      }
  }
  return k;
}

void SensitivityProbe::move_cut(int k) {
  if (cut_node_ == k) return;
  const Graph& g = sim_->graph();
  std::map<std::string, int> made;  // value -> producing node (graph inputs: -1)
  for (const auto& vi : g.inputs) made[vi.name] = -1;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!sim_static_[i])
      for (const auto& o : g.nodes[i].outputs)
        if (!o.empty()) made[o] = static_cast<int>(i);
  std::set<std::string> want;
  for (size_t i = static_cast<size_t>(k); i < g.nodes.size(); ++i)
    for (const auto& v : g.nodes[i].inputs)
      if (auto it = made.find(v); it != made.end() && it->second < k) want.insert(v);
  for (const auto& o : g.outputs)
    if (auto it = made.find(o.name); it != made.end() && it->second < k) want.insert(o.name);
  const bool forward = cut_node_ >= 0 && cut_node_ < k;
  if (!forward) cut_ = CutStore(0, -1, "");  // (freed before the new one is made)
  CutStore next(batches_.size(), cut_budget_, spill_dir_);
  for (size_t b = 0; b < batches_.size(); ++b) {
    std::map<std::string, at::Tensor> feeds;
    if (forward) {
      feeds = cut_.get(b);
      cut_.drop(b);  // the old cut shrinks as the new one grows
    } else
      for (size_t i = 0; i < g.inputs.size(); ++i) feeds[g.inputs[i].name] = batches_[b].inputs[i];
    std::vector<std::string> fetch;
    for (const auto& v : want)
      if (!feeds.count(v)) fetch.push_back(v);
    std::map<std::string, at::Tensor> got =
        fetch.empty() ? std::map<std::string, at::Tensor>{} : sim_->run(feeds, fetch, /*fused=*/true);
    for (const auto& v : want) next.put(b, v, feeds.count(v) ? feeds.at(v) : got.at(v));
  }
  cut_ = std::move(next);
  cut_node_ = k;
}

at::Tensor SensitivityProbe::logits_from_cut(Executor& ex, const std::map<std::string, at::Tensor>& extra) {
  const Graph& g = ex.graph();
  std::vector<std::string> fetch;
  for (const auto& o : g.outputs) fetch.push_back(o.name);
  std::vector<at::Tensor> zs;
  for (size_t b = 0; b < cut_.batches(); ++b) {
    std::map<std::string, at::Tensor> feeds = cut_.get(b);
    for (const auto& kv : extra) feeds[kv.first] = kv.second;
    std::map<std::string, at::Tensor> got = ex.run(feeds, fetch, /*fused=*/true);
    std::vector<at::Tensor> outs;
    for (const auto& f : fetch) outs.push_back(got.at(f));
    zs.push_back(flatten_outputs(outs));
  }
  return at::cat(zs);
}

ProbeMetrics SensitivityProbe::run(const std::map<std::string, at::Tensor>& weights) { return run_on(*sim_, weights); }

ProbeMetrics SensitivityProbe::run_on(Executor& ex, const std::map<std::string, at::Tensor>& weights) {
  // Changed layers of the reference model: re-run only from the first of them on, from the cached
  // values at the cut before it (the measurement is the same; the upstream part is not redone).
  const int k = &ex == sim_.get() ? cut_point(weights) : -1;
  const bool from_cut = k >= 0;
  if (from_cut) move_cut(k);
  // The replaced weights are fed as the values the layers read (not set by hooks: a hook change
  // would make the executor recompute every cached constant, e.g. each layer's dequantized weight).
  std::map<std::string, at::Tensor> extra;
  for (const auto& [layer, w] : weights) {
    auto it = dq_name_.find(layer);
    MIXQ_CHECK(it != dq_name_.end(), ErrorKind::kInvalidArgument, "sensitivity probe: no layer '", layer, "'");
    extra[it->second] = w.to(prepared_.initializers.at(ref_plan_.find(layer)->weight).scalar_type());
  }
  return metrics_of(from_cut ? logits_from_cut(ex, extra) : logits(ex, extra));
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
  qo.batch_size = calib_batch_;
  qo.progress = false;
  calibrate_activations(q, p, *data, qo);
  auto& out = acts_at_[bits];
  for (auto& a : q.activations) out[a.tensor] = std::move(a);
  return out;
}

std::vector<ProbeMetrics> SensitivityProbe::run_changes(const std::vector<ProbeChange>& changes) {
  // Weight-only changes in the order of their cuts (the cut then only moves forward), the others
  // (whole-model runs) after them; each result is what run_change gives for it alone.
  std::vector<std::pair<int, size_t>> order;
  for (size_t i = 0; i < changes.size(); ++i) {
    std::map<std::string, at::Tensor> names;
    for (const auto& kv : changes[i].weights) names[kv.first] = at::Tensor();
    const int k = changes[i].acts.empty() ? cut_point(names) : -1;
    order.emplace_back(k < 0 ? std::numeric_limits<int>::max() : k, i);
  }
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<ProbeMetrics> out(changes.size());
  for (const auto& [k, i] : order) out[i] = run_change(changes[i]);
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
