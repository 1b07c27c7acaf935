#include "graph/fold_bn.h"

#include <ATen/ATen.h>

#include <set>

#include "mixq/error.h"

namespace mixq {

namespace {

// How many times each value is read: node inputs (each occurrence) plus graph outputs.
std::map<std::string, int> use_counts(const Graph& g) {
  std::map<std::string, int> uses;
  for (const auto& n : g.nodes)
    for (const auto& in : n.inputs)
      if (!in.empty()) ++uses[in];
  for (const auto& o : g.outputs) ++uses[o.name];
  return uses;
}

std::set<std::string> all_value_names(const Graph& g) {
  std::set<std::string> names;
  for (const auto& vi : g.inputs) names.insert(vi.name);
  for (const auto& vi : g.outputs) names.insert(vi.name);
  for (const auto& kv : g.initializers) names.insert(kv.first);
  for (const auto& kv : g.value_info) names.insert(kv.first);
  for (const auto& n : g.nodes) {
    for (const auto& v : n.inputs) names.insert(v);
    for (const auto& v : n.outputs) names.insert(v);
  }
  return names;
}

std::string fresh_name(std::set<std::string>& names, const std::string& base) {
  std::string name = base;
  for (int k = 1; names.count(name); ++k) name = base + "_" + std::to_string(k);
  names.insert(name);
  return name;
}

int64_t int_attr(const Node& n, const char* key, int64_t dflt) {
  const Attribute* a = n.attr(key);
  return a && a->type == AttrType::kInt ? a->i : dflt;
}
float float_attr(const Node& n, const char* key, float dflt) {
  const Attribute* a = n.attr(key);
  return a && a->type == AttrType::kFloat ? a->f : dflt;
}

const at::Tensor* initializer(const Graph& g, const std::string& name) {
  auto it = g.initializers.find(name);
  return it == g.initializers.end() ? nullptr : &it->second;
}

// The folded weight and bias of one layer, or nothing when the pattern does not fit.
struct Folded {
  at::Tensor weight, bias;        // float32
  at::Tensor gamma, beta, factor;  // [C] float32, for FoldedBn
  double eps = 1e-5;
};

bool fold_one(const Graph& g, const Node& layer, const Node& bn, Folded& out) {
  const at::Tensor* w = initializer(g, layer.inputs[1]);
  if (!w || w->scalar_type() != at::kFloat) return false;
  const at::Tensor* b = nullptr;
  if (layer.inputs.size() > 2 && !layer.inputs[2].empty()) {
    b = initializer(g, layer.inputs[2]);
    if (!b || b->scalar_type() != at::kFloat) return false;
  }
  at::Tensor p[4];  // gamma, beta, mean, var
  for (int k = 0; k < 4; ++k) {
    const at::Tensor* t = initializer(g, bn.inputs[static_cast<size_t>(k) + 1]);
    if (!t || !at::isFloatingType(t->scalar_type())) return false;
    p[k] = t->to(at::kDouble).reshape({-1});
  }
  const int64_t n_params = p[0].numel();
  for (int k = 1; k < 4; ++k)
    if (p[k].numel() != n_params) return false;
  const double eps = static_cast<double>(float_attr(bn, "epsilon", 1e-5f));
  const at::Tensor f = p[0] / at::sqrt(p[3] + eps);  // [C] in double
  const at::Tensor wd = w->to(at::kDouble);

  int64_t channels = 0;
  at::Tensor w_new;
  const std::string& op = layer.op_type;
  if (op == "Conv") {
    if (wd.dim() < 3) return false;
    channels = wd.size(0);
    if (channels != n_params) return false;
    std::vector<int64_t> view(static_cast<size_t>(wd.dim()), 1);
    view[0] = channels;
    w_new = wd * f.view(view);
  } else if (op == "ConvTranspose") {
    if (wd.dim() < 3) return false;
    const int64_t groups = int_attr(layer, "group", 1);
    if (groups <= 0 || wd.size(0) % groups != 0) return false;
    const int64_t cout_g = wd.size(1);
    channels = cout_g * groups;
    if (channels != n_params) return false;
    // [Cin, Cout/g, k...] -> [g, Cin/g, Cout/g, k...]; output channel = grp * Cout/g + j.
    std::vector<int64_t> grouped = {groups, wd.size(0) / groups};
    for (int64_t d = 1; d < wd.dim(); ++d) grouped.push_back(wd.size(d));
    std::vector<int64_t> fview(grouped.size(), 1);
    fview[0] = groups;
    fview[2] = cout_g;
    w_new = (wd.reshape(grouped) * f.view(fview)).reshape(wd.sizes());
  } else {  // Gemm
    if (wd.dim() != 2) return false;
    const bool trans_b = int_attr(layer, "transB", 0) != 0;
    channels = trans_b ? wd.size(0) : wd.size(1);
    if (channels != n_params) return false;
    w_new = trans_b ? wd * f.view({channels, 1}) : wd * f.view({1, channels});
  }

  at::Tensor b_eff;  // the layer's effective additive bias, broadcast against [C]
  if (b) {
    b_eff = b->to(at::kDouble);
    if (op == "Gemm") {
      // Gemm's C broadcasts to [M, N]; it may have any shape that broadcasts with [N].
      if (b_eff.dim() > 2 ||
          (b_eff.dim() >= 1 && b_eff.size(-1) != 1 && b_eff.size(-1) != channels))
        return false;
      b_eff = b_eff * static_cast<double>(float_attr(layer, "beta", 1.0f));
    } else {
      if (b_eff.numel() != channels) return false;
      b_eff = b_eff.reshape({channels});
    }
  } else {
    b_eff = at::zeros({channels}, at::kDouble);
  }
  at::Tensor b_new = (b_eff - p[2]) * f + p[1];
  out.eps = eps;
  out.gamma = p[0].to(at::kFloat);
  out.beta = p[1].to(at::kFloat);
  out.factor = f.to(at::kFloat);
  out.weight = w_new.to(at::kFloat).contiguous();
  out.bias = b_new.to(at::kFloat).contiguous();
  return true;
}

bool is_inference_bn(const Graph& g, const Node& bn) {
  if (bn.op_type != "BatchNormalization" || !bn.domain.empty()) return false;
  if (bn.inputs.size() != 5 || bn.outputs.empty() || bn.outputs[0].empty()) return false;
  for (size_t k = 1; k < bn.outputs.size(); ++k)
    if (!bn.outputs[k].empty()) return false;  // training outputs
  for (size_t k = 0; k < 5; ++k)
    if (bn.inputs[k].empty()) return false;
  const int64_t opset = g.opset();
  if (opset >= 14 && int_attr(bn, "training_mode", 0) != 0) return false;
  if (opset < 9 && int_attr(bn, "spatial", 1) == 0) return false;  // per-element statistics
  return true;
}

}  // namespace

int fold_batchnorm(Graph& g) { return fold_batchnorm(g, nullptr); }

int fold_batchnorm(Graph& g, std::vector<FoldedBn>* records) {
  std::map<std::string, int> uses = use_counts(g);
  std::set<std::string> names = all_value_names(g);
  std::map<std::string, int> producer;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (const auto& o : g.nodes[i].outputs)
      if (!o.empty()) producer[o] = static_cast<int>(i);

  std::vector<char> removed(g.nodes.size(), 0);
  std::set<std::string> maybe_unused;  // initializers this pass stopped reading
  int folded = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& bn = g.nodes[i];
    if (!is_inference_bn(g, bn)) continue;
    const std::string x = bn.inputs[0];
    auto pit = producer.find(x);
    if (pit == producer.end() || removed[static_cast<size_t>(pit->second)]) continue;
    Node& layer = g.nodes[static_cast<size_t>(pit->second)];
    if (!layer.domain.empty() ||
        (layer.op_type != "Conv" && layer.op_type != "ConvTranspose" && layer.op_type != "Gemm"))
      continue;
    if (layer.inputs.size() < 2 || layer.outputs.size() != 1 || layer.outputs[0] != x) continue;
    if (uses[x] != 1) continue;  // another node or a graph output reads the pre-BN value
    Folded fb;
    if (!fold_one(g, layer, bn, fb)) continue;

    // Weight: replace in place when only this layer reads it, else give the layer a copy.
    const std::string w_old = layer.inputs[1];
    if (uses[w_old] == 1) {
      g.initializers[w_old] = fb.weight;
    } else {
      std::string w_name = fresh_name(names, w_old + "_bnfold");
      g.initializers[w_name] = fb.weight;
      layer.inputs[1] = w_name;
      --uses[w_old];
      maybe_unused.insert(w_old);
      uses[w_name] = 1;
    }
    const bool had_bias = layer.inputs.size() > 2 && !layer.inputs[2].empty();
    if (had_bias && uses[layer.inputs[2]] == 1) {
      g.initializers[layer.inputs[2]] = fb.bias;
    } else {
      std::string b_name = had_bias ? fresh_name(names, layer.inputs[2] + "_bnfold")
                                    : fresh_name(names, layer.name + "_bias");
      if (had_bias) {
        --uses[layer.inputs[2]];
        maybe_unused.insert(layer.inputs[2]);
      }
      g.initializers[b_name] = fb.bias;
      if (layer.inputs.size() < 3) layer.inputs.resize(3);
      layer.inputs[2] = b_name;
      uses[b_name] = 1;
    }
    if (layer.op_type == "Gemm") {  // beta was applied to the folded bias
      Attribute one;
      one.type = AttrType::kFloat;
      one.f = 1.0f;
      layer.attrs["beta"] = one;
    }

    // The layer now produces the BN's output; the BN goes.
    const std::string y = bn.outputs[0];
    layer.outputs[0] = y;
    producer[y] = pit->second;
    producer.erase(x);
    g.value_info.erase(x);
    for (const auto& in : bn.inputs) {
      --uses[in];
      if (g.is_initializer(in)) maybe_unused.insert(in);
    }
    removed[i] = 1;
    ++folded;
    if (records) records->push_back({layer.name, fb.gamma, fb.beta, fb.factor, fb.eps});
  }
  if (folded == 0) return 0;

  std::vector<Node> kept;
  kept.reserve(g.nodes.size() - static_cast<size_t>(folded));
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!removed[i]) kept.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(kept);
  uses = use_counts(g);
  for (const auto& name : maybe_unused)
    if (uses[name] == 0) g.initializers.erase(name);
  return folded;
}

int remove_identity_and_dropout(Graph& g) {
  std::set<std::string> graph_outputs;
  for (const auto& o : g.outputs) graph_outputs.insert(o.name);
  std::map<std::string, int> uses = use_counts(g);
  const int64_t opset = g.opset();

  std::map<std::string, std::string> replace;  // bypassed output -> its input
  std::vector<char> removed(g.nodes.size(), 0);
  int count = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& n = g.nodes[i];
    // Rewire first: this node may read a value bypassed earlier.
    for (auto& in : n.inputs) {
      auto it = replace.find(in);
      if (it != replace.end()) in = it->second;
    }
    if (!n.domain.empty() || n.inputs.empty() || n.inputs[0].empty() || n.outputs.empty() ||
        n.outputs[0].empty() || graph_outputs.count(n.outputs[0]))
      continue;
    if (n.op_type == "Dropout") {
      if (n.outputs.size() > 1 && !n.outputs[1].empty() &&
          (uses[n.outputs[1]] != 0 || graph_outputs.count(n.outputs[1])))
        continue;                                                 // the mask is used
      if (opset < 7 && int_attr(n, "is_test", 0) == 0) continue;  // training-time dropout
      if (opset >= 12 && n.inputs.size() > 2 && !n.inputs[2].empty()) {
        const at::Tensor* tm = initializer(g, n.inputs[2]);
        if (!tm || tm->numel() != 1 || tm->to(at::kDouble).item<double>() != 0) continue;
      }
    } else if (n.op_type != "Identity") {
      continue;
    }
    replace[n.outputs[0]] = n.inputs[0];
    g.value_info.erase(n.outputs[0]);
    removed[i] = 1;
    ++count;
  }
  if (count == 0) return 0;
  std::vector<Node> kept;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!removed[i]) kept.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(kept);
  return count;
}

}  // namespace mixq
