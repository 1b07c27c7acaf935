#include "quant/methods/recon_model.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <set>

#include "core/interrupt.h"
#include "core/progress.h"
#include "quant/embed_quant.h"
#include "quant/methods/fused_quant.h"
#include "quant/quantizer.h"

namespace mixq {

namespace {
const std::string kQuantSuffix = "::mixq_q";

// The prepared graph with an Identity "T::mixq_q" in front of the quantized layers reading T (in
// front of every reader when T is quantized for all of them, ActPlacement::kOutputs).
Graph training_graph(const QuantizedModel& qm) {
  Graph g = qm.graph;
  std::set<std::string> layers;
  for (const auto& w : qm.weights) layers.insert(w.node);
  std::set<std::string> acts, all_readers;
  for (const auto& a : qm.activations) {
    acts.insert(a.tensor);
    if (a.all_readers) all_readers.insert(a.tensor);
  }
  std::vector<Node> nodes;
  std::set<std::string> inserted;
  for (auto& n : g.nodes) {
    const bool layer = layers.count(n.name) > 0;
    for (auto& in : n.inputs) {
      if (!acts.count(in) || (!layer && !all_readers.count(in))) continue;
      if (inserted.insert(in).second) {
        Node id;
        id.name = "mixq_actq/" + in;
        id.op_type = "Identity";
        id.inputs = {in};
        id.outputs = {in + kQuantSuffix};
        nodes.push_back(std::move(id));
      }
      in += kQuantSuffix;
    }
    nodes.push_back(std::move(n));
  }
  g.nodes = std::move(nodes);
  return g;
}
}  // namespace

std::string ReconModel::quantized_value(const std::string& tensor) { return tensor + kQuantSuffix; }

ReconModel::ReconModel(QuantizedModel& qm) : qm_(qm) {
  fp_ = std::make_unique<Executor>(qm.graph);
  Graph tg = training_graph(qm);
  for (size_t i = 0; i < qm.weights.size(); ++i) weight_index_[qm.weights[i].node] = i;
  for (const auto& n : tg.nodes) {
    if (!weight_index_.count(n.name)) continue;
    const auto& w = qm.weights[weight_index_[n.name]].weight;
    // Conv / ConvTranspose / Gemm: input 2 is the bias when it is an initializer.
    if ((n.op_type == "Conv" || n.op_type == "ConvTranspose" || n.op_type == "Gemm") && n.inputs.size() > 2 &&
        tg.is_initializer(n.inputs[2]) && n.inputs[2] != w)
      bias_of_[n.name] = n.inputs[2];
    for (const auto& in : n.inputs)
      if (in.size() > kQuantSuffix.size() && in.compare(in.size() - kQuantSuffix.size(), kQuantSuffix.size(), kQuantSuffix) == 0)
        act_of_layer_[n.name] = in.substr(0, in.size() - kQuantSuffix.size());
  }
  quant_ = std::make_unique<Executor>(std::move(tg));
  // Weight and bias replacement hooks (initializers, so they fire on every run).
  std::set<std::string> hooked;
  auto hook_init = [&](const std::string& name) {
    if (!hooked.insert(name).second) return;
    quant_->add_hook(name, [this](const std::string& v, at::Tensor& t) {
      auto it = current_.find(v);
      if (it != current_.end() && it->second.defined()) t = it->second;
    });
  };
  for (const auto& w : qm.weights) hook_init(w.weight);
  for (const auto& kv : bias_of_) hook_init(kv.second);
  for (const auto& a : qm.activations) {
    auto aq = std::make_unique<ActQuant>();
    aq->tensor = a.tensor;
    ActQuant* p = aq.get();
    acts_[a.tensor] = std::move(aq);
    if (!quant_->has_value(a.tensor + kQuantSuffix)) continue;  // no quantized layer reads it
    quant_->add_hook(a.tensor + kQuantSuffix, [p](const std::string&, at::Tensor& t) {
      if (p->on_value) p->on_value(*p, t);
      if (p->enabled) t = fake_quant_fused(t, p->scale, p->zero_point, p->qmin, p->qmax);
    });
  }
  load_activation_params();
  for (const auto& w : qm.weights) use_quantized_weight(w.node);
}

void ActQuant::load(const QuantizedActivation& a) {
  // Normal tensors even inside an inference-mode run (the sequential init loads from a hook):
  // autograd saves the step of a quantizer it does not learn.
  c10::InferenceMode normal_tensors(false);
  scale = a.params.scale.to(at::kFloat).reshape({}).clone();
  zero_point = a.params.zero_point.to(at::kFloat).reshape({}).clone();
  qmin = static_cast<double>(a.scheme.qmin());
  qmax = static_cast<double>(a.scheme.qmax());
}

void ReconModel::load_activation_params() {
  for (const auto& a : qm_.activations)
    if (ActQuant* p = act(a.tensor)) p->load(a);
}

QuantizedWeight& ReconModel::weight(const std::string& layer) {
  auto it = weight_index_.find(layer);
  MIXQ_ASSERT(it != weight_index_.end(), "no quantized weight for layer ", layer);
  return qm_.weights[it->second];
}

const std::string& ReconModel::bias_name(const std::string& layer) const {
  static const std::string none;
  auto it = bias_of_.find(layer);
  return it == bias_of_.end() ? none : it->second;
}

void ReconModel::set_weight(const std::string& layer, at::Tensor w) { current_[weight(layer).weight] = std::move(w); }

void ReconModel::set_bias(const std::string& layer, at::Tensor b) {
  const std::string& name = bias_name(layer);
  MIXQ_ASSERT(!name.empty(), "layer ", layer, " has no bias");
  current_[name] = std::move(b);
}

at::Tensor ReconModel::dequantized_weight(const std::string& layer) {
  const QuantizedWeight& w = weight(layer);
  at::Tensor dq = dequantize_weight(w);  // with multipoint's extra points, where there are any
  const at::Tensor& orig = qm_.graph.initializers.at(w.weight);
  return dq.reshape(orig.sizes()).to(orig.scalar_type());
}

ActQuant* ReconModel::act(const std::string& tensor) {
  auto it = acts_.find(tensor);
  return it == acts_.end() ? nullptr : it->second.get();
}

ActQuant* ReconModel::act_of_layer(const std::string& layer) {
  auto it = act_of_layer_.find(layer);
  return it == act_of_layer_.end() ? nullptr : act(it->second);
}

std::vector<ActQuant*> ReconModel::acts() {
  std::vector<ActQuant*> out;
  for (auto& kv : acts_) out.push_back(kv.second.get());
  return out;
}

void ReconModel::store_activation_params() {
  for (auto& a : qm_.activations) {
    ActQuant* p = act(a.tensor);
    if (!p) continue;
    a.params.scale = p->scale.detach().clone().reshape(a.params.scale.sizes()).to(a.params.scale.scalar_type());
  }
}

std::map<std::string, at::Tensor> ReconModel::feeds(const Batch& b) const {
  std::map<std::string, at::Tensor> f;
  const auto& ins = quant_->graph().inputs;
  for (size_t i = 0; i < ins.size() && i < b.inputs.size(); ++i) f[ins[i].name] = b.inputs[i];
  return f;
}

std::vector<TensorStore> ReconModel::collect(Executor& ex, const Dataset& data, const std::vector<std::string>& names,
                                             CacheBudget* budget, int64_t batch, const std::string& label,
                                             bool progress) {
  std::vector<TensorStore> stores;
  for (size_t i = 0; i < names.size(); ++i) stores.emplace_back(budget);
  Progress bar(label, progress ? data.size() : 0, "img");
  for (int64_t b = 0; b < data.size(); b += batch) {
    throw_if_interrupted();  // the stores free themselves (spill files are unlinked already)
    int64_t e = std::min(data.size(), b + batch);
    auto out = ex.run(feeds(data.get(b, e)), names);
    for (size_t i = 0; i < names.size(); ++i) stores[i].append(out.at(names[i]));
    bar.advance(e - b);
  }
  for (auto& s : stores) s.finish();
  return stores;
}

}  // namespace mixq
