#include "exec/fusion.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <set>
#include <unordered_map>

#include "exec/fusion_attention.h"
#include "exec/fusion_kernels.h"

namespace mixq {

const char* fusion_kind_name(FusionKind k) {
  switch (k) {
    case FusionKind::kLinear: return "Linear";
    case FusionKind::kGelu: return "Gelu";
    case FusionKind::kLayerNorm: return "LayerNorm";
    case FusionKind::kConvBn: return "ConvBn";
    case FusionKind::kAddRelu: return "AddRelu";
    case FusionKind::kEmbedSum: return "EmbedSum";
    case FusionKind::kConvAct: return "ConvAct";
    case FusionKind::kHardSwish: return "HardSwish";
    case FusionKind::kSilu: return "Silu";
    case FusionKind::kQdq: return "QuantDequant";
    case FusionKind::kProducerQdq: return "ProducerQuantDequant";
    case FusionKind::kGemmAct: return "GemmAct";
    case FusionKind::kAttention: return "Attention";
  }
  return "?";
}

bool fusion_disabled_by_env() {
  const char* v = std::getenv("MIXQ_NO_FUSION");
  return v && *v && std::string(v) != "0";
}

namespace {

using namespace fusion_kernels;  // NOLINT: the kernel classes, one file over

// ---- matching --------------------------------------------------------------------------------

class Matcher {
 public:
  explicit Matcher(const Graph& g) : g_(g), claimed_(g.nodes.size(), 0), legacy_(exec_legacy_by_env()) {
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      for (const auto& o : g.nodes[i].outputs)
        if (!o.empty()) producer_[o] = static_cast<int>(i);
      for (const auto& v : g.nodes[i].inputs)
        if (!v.empty()) uses_[v]++;
    }
    for (const auto& vi : g.outputs) graph_outputs_.insert(vi.name);
  }

  std::vector<FusionGroup> run() {
    std::vector<FusionGroup> out;
    // LayerNorm first (largest), then GELU, then Linear; members never overlap.
    for (size_t i = 0; i < g_.nodes.size(); ++i)
      if (auto grp = match_layer_norm(static_cast<int>(i))) claim(*grp, out);
    for (size_t i = 0; i < g_.nodes.size(); ++i)
      if (auto grp = match_gelu(static_cast<int>(i))) claim(*grp, out);
    for (size_t i = 0; i < g_.nodes.size(); ++i)
      if (auto grp = match_attention(static_cast<int>(i))) claim(*grp, out);
    for (size_t i = 0; i < g_.nodes.size(); ++i)
      if (auto grp = match_linear(static_cast<int>(i))) claim(*grp, out);
    for (size_t i = 0; i < g_.nodes.size(); ++i)  // with a following activation first, then without
      if (auto grp = match_conv_bn(static_cast<int>(i), true)) claim(*grp, out);
    for (size_t i = 0; i < g_.nodes.size(); ++i)
      if (auto grp = match_conv_bn(static_cast<int>(i), false)) claim(*grp, out);
    if (!legacy_)
      for (size_t i = 0; i < g_.nodes.size(); ++i)
        if (auto grp = match_conv_act(static_cast<int>(i))) claim(*grp, out);
    for (size_t i = 0; i < g_.nodes.size(); ++i)
      if (auto grp = match_add_relu(static_cast<int>(i))) claim(*grp, out);
    if (!legacy_)
      for (size_t i = 0; i < g_.nodes.size(); ++i)
        if (auto grp = match_act_chain(static_cast<int>(i))) claim(*grp, out);
    for (size_t i = 0; i < g_.nodes.size(); ++i)
      if (auto grp = match_embed_sum(static_cast<int>(i))) claim(*grp, out);
    if (!legacy_) {
      for (size_t i = 0; i < g_.nodes.size(); ++i)
        if (auto grp = match_gemm_act(static_cast<int>(i))) claim(*grp, out);
    }
    if (!legacy_) {
      for (size_t i = 0; i < g_.nodes.size(); ++i)
        if (auto grp = match_qdq(static_cast<int>(i))) claim(*grp, out);
      merge_producer_qdq(out);
    }
    std::sort(out.begin(), out.end(),
              [](const FusionGroup& a, const FusionGroup& b) { return a.nodes.back() < b.nodes.back(); });
    return out;
  }

 private:
  const Node& node(int i) const { return g_.nodes[i]; }

  // Index of the unclaimed default-domain node of type `op` with one output producing v, or -1.
  int prod(const std::string& v, const char* op) const {
    auto it = producer_.find(v);
    if (it == producer_.end()) return -1;
    const Node& n = node(it->second);
    if (claimed_[it->second] || !n.domain.empty() || n.op_type != op || n.outputs.size() != 1) return -1;
    return it->second;
  }
  bool is_op(int i, const char* op, size_t n_inputs) const {
    const Node& n = node(i);
    return !claimed_[i] && n.domain.empty() && n.op_type == op && n.outputs.size() == 1 &&
           n.inputs.size() == n_inputs &&
           std::none_of(n.inputs.begin(), n.inputs.end(), [](const std::string& s) { return s.empty(); });
  }

  // The single-element value of a constant (initializer or Constant node output), with its dtype.
  std::optional<std::pair<double, at::ScalarType>> scalar_const(const std::string& v) const {
    at::Tensor t;
    auto init = g_.initializers.find(v);
    if (init != g_.initializers.end()) {
      t = init->second;
    } else {
      auto it = producer_.find(v);
      if (it == producer_.end()) return std::nullopt;
      const Node& n = node(it->second);
      if (!n.domain.empty() || n.op_type != "Constant" || n.outputs.size() != 1) return std::nullopt;
      if (const Attribute* a = n.attr("value"); a && a->type == AttrType::kTensor) t = a->t;
      else if (const Attribute* a = n.attr("value_float"); a && a->type == AttrType::kFloat)
        return std::make_pair(static_cast<double>(a->f), at::kFloat);
      else return std::nullopt;
    }
    if (!t.defined() || t.numel() != 1) return std::nullopt;
    if (!is_float_type(t.scalar_type()) && !at::isIntegralType(t.scalar_type(), false)) return std::nullopt;
    return std::make_pair(t.item<double>(), t.scalar_type());
  }
  // v is a float/double constant equal to `want` exactly (as a value of the constant's dtype).
  std::optional<at::ScalarType> float_const_eq(const std::string& v, double want) const {
    auto c = scalar_const(v);
    if (!c || !is_float_type(c->second)) return std::nullopt;
    double w = c->second == at::kFloat ? static_cast<double>(static_cast<float>(want)) : want;
    if (c->first != w) return std::nullopt;
    return c->second;
  }

  // For a binary node i, calls f(a, b) with its inputs in both orders; returns the first success.
  template <typename F>
  static auto either(const Node& n, F f) -> decltype(f(n.inputs[0], n.inputs[1])) {
    if (auto r = f(n.inputs[0], n.inputs[1])) return r;
    return f(n.inputs[1], n.inputs[0]);
  }

  // Completes `grp` (nodes, interior, constants and the data inputs already set): checks the
  // interior-value rules and appends every other outside value the members read to `inputs`.
  bool finish(FusionGroup& grp) const {
    std::sort(grp.nodes.begin(), grp.nodes.end());
    if (std::adjacent_find(grp.nodes.begin(), grp.nodes.end()) != grp.nodes.end()) return false;
    std::set<int> members(grp.nodes.begin(), grp.nodes.end());
    std::set<std::string> produced;
    for (int m : grp.nodes) {
      if (claimed_[m]) return false;
      produced.insert(node(m).outputs[0]);
    }
    grp.output = node(grp.nodes.back()).outputs[0];
    grp.interior.clear();
    std::unordered_map<std::string, int> inner_uses;
    for (int m : grp.nodes)
      for (const auto& v : node(m).inputs) inner_uses[v]++;
    for (const auto& v : produced) {
      if (v == grp.output) continue;
      if (graph_outputs_.count(v)) return false;
      auto u = uses_.find(v);
      if (u == uses_.end() || u->second != inner_uses[v]) return false;  // an outside consumer
      grp.interior.push_back(v);
    }
    for (int m : grp.nodes)
      for (const auto& v : node(m).inputs)
        if (!produced.count(v) && std::find(grp.inputs.begin(), grp.inputs.end(), v) == grp.inputs.end())
          grp.inputs.push_back(v);
    return true;
  }

  void claim(FusionGroup& grp, std::vector<FusionGroup>& out) {
    for (int m : grp.nodes) claimed_[m] = 1;
    out.push_back(std::move(grp));
  }

  // ReduceMean over one axis with keepdims; returns the axis.
  std::optional<int64_t> reduce_mean_axis(int i) const {
    const Node& n = node(i);
    if (!n.domain.empty() || n.op_type != "ReduceMean" || n.outputs.size() != 1 || n.inputs.empty()) return std::nullopt;
    const Attribute* kd = n.attr("keepdims");
    if (kd && (kd->type != AttrType::kInt || kd->i != 1)) return std::nullopt;
    std::vector<int64_t> axes;
    if (const Attribute* a = n.attr("axes")) {
      if (a->type != AttrType::kInts || n.inputs.size() != 1) return std::nullopt;
      axes = a->ints;
    } else if (n.inputs.size() == 2 && !n.inputs[1].empty()) {  // opset 18: axes input
      auto c = scalar_const(n.inputs[1]);
      if (!c || !at::isIntegralType(c->second, false)) return std::nullopt;
      axes = {static_cast<int64_t>(c->first)};
    } else {
      return std::nullopt;  // reduce over all axes
    }
    if (axes.size() != 1) return std::nullopt;
    return axes[0];
  }

  std::optional<FusionGroup> match_linear(int i) const {
    if (!is_op(i, "Add", 2)) return std::nullopt;
    return either(node(i), [&](const std::string& y, const std::string& b) -> std::optional<FusionGroup> {
      int mm = prod(y, "MatMul");
      if (mm < 0 || !is_op(mm, "MatMul", 2)) return std::nullopt;
      const std::string& x = node(mm).inputs[0];
      const std::string& w = node(mm).inputs[1];
      auto wi = g_.initializers.find(w);
      if (wi != g_.initializers.end() && wi->second.dim() != 2) return std::nullopt;
      auto bi = g_.initializers.find(b);
      if (bi != g_.initializers.end() && bi->second.dim() != 1) return std::nullopt;
      FusionGroup grp{FusionKind::kLinear, {mm, i}, {x, w, b}, {}, {}, {}, nullptr};
      if (!finish(grp)) return std::nullopt;
      grp.kernel = std::make_unique<LinearKernel>();
      return grp;
    });
  }

  // Node i = MatMul(P, V), P = Softmax(T) over the last axis, T = S * c, c * S or S / c (a scalar
  // float constant; or no scaling node: T = S), S = MatMul(Q, K).
  std::optional<FusionGroup> match_attention(int i) const {
    if (!is_op(i, "MatMul", 2)) return std::nullopt;
    const std::string &p = node(i).inputs[0], &v = node(i).inputs[1];
    int sm = prod(p, "Softmax");
    if (sm < 0 || !is_op(sm, "Softmax", 1)) return std::nullopt;
    int64_t axis = g_.opset() >= 13 ? -1 : 1;
    if (const Attribute* a = node(sm).attr("axis")) {
      if (a->type != AttrType::kInt) return std::nullopt;
      axis = a->i;
    }
    std::vector<int> members = {sm, i};
    std::vector<std::string> consts;
    std::string s = node(sm).inputs[0];
    float scale = 1.0f;
    bool divide = false;
    for (const char* op : {"Mul", "Div"}) {
      const int sc = prod(s, op);
      if (sc < 0 || !is_op(sc, op, 2)) continue;
      const bool div = op[0] == 'D';
      const Node& n = node(sc);
      for (int side = 0; side < (div ? 1 : 2); ++side) {  // side: the scores' operand (Div: the dividend)
        auto c = scalar_const(n.inputs[1 - side]);
        if (!c || c->second != at::kFloat || prod(n.inputs[side], "MatMul") < 0) continue;
        scale = static_cast<float>(c->first);
        divide = div;
        consts.push_back(n.inputs[1 - side]);
        members.push_back(sc);
        s = n.inputs[side];
        break;
      }
      if (!consts.empty()) break;
    }
    int mm = prod(s, "MatMul");
    if (mm < 0 || !is_op(mm, "MatMul", 2)) return std::nullopt;
    members.push_back(mm);
    FusionGroup grp{FusionKind::kAttention, members, {node(mm).inputs[0], node(mm).inputs[1], v}, {}, {}, consts, nullptr};
    if (!finish(grp)) return std::nullopt;
    grp.kernel = std::make_unique<AttentionKernel>(scale, divide, axis);
    return grp;
  }

  // The activation ending at node i: Relu; Clip with constant float bounds (opset 11+); hard-swish
  // Mul(x, HardSigmoid(x)); SiLU Mul(x, Sigmoid(x)) (either operand order). Sets the activation's
  // input value, its member nodes and the constants it bakes in. `chains_only`: the two-node
  // chains only (standalone fusion: a lone Relu or Clip is already one node).
  struct ActTail {
    Activation act;
    std::string input;
    std::vector<int> members;
    std::vector<std::string> constants;
  };
  std::optional<ActTail> match_act_tail(int i, bool chains_only) const {
    const Node& n = node(i);
    if (!chains_only && is_op(i, "Relu", 1)) {
      ActTail t;
      t.act.kind = Activation::kRelu;
      t.input = n.inputs[0];
      t.members = {i};
      return t;
    }
    if (legacy_) return std::nullopt;
    if (!chains_only && g_.opset() >= 14 && is_op(i, "HardSwish", 1)) {  // exactly at::hardswish
      ActTail t;
      t.act.kind = Activation::kHardSwish;
      t.act.alpha = static_cast<double>(1.0f / 6.0f);
      t.act.beta = 0.5;
      t.input = n.inputs[0];
      t.members = {i};
      return t;
    }
    if (!chains_only && g_.opset() >= 11 && !claimed_[i] && n.domain.empty() && n.op_type == "Clip" &&
        n.outputs.size() == 1 && !n.inputs.empty() && n.inputs.size() <= 3 && !n.inputs[0].empty()) {
      ActTail t;
      t.act.kind = Activation::kClip;
      t.input = n.inputs[0];
      t.members = {i};
      for (size_t k = 1; k < n.inputs.size(); ++k) {
        if (n.inputs[k].empty()) continue;
        auto c = scalar_const(n.inputs[k]);
        if (!c || !is_float_type(c->second) || std::isnan(c->first)) return std::nullopt;
        (k == 1 ? t.act.lo : t.act.hi) = c->first;
        t.constants.push_back(n.inputs[k]);
      }
      if (t.act.lo && t.act.hi && *t.act.lo > *t.act.hi) return std::nullopt;
      return t;
    }
    if (!is_op(i, "Mul", 2)) return std::nullopt;
    return either(n, [&](const std::string& x, const std::string& gate) -> std::optional<ActTail> {
      ActTail t;
      t.input = x;
      int hs = prod(gate, "HardSigmoid");
      if (hs >= 0 && is_op(hs, "HardSigmoid", 1) && node(hs).inputs[0] == x) {
        const Attribute* a = node(hs).attr("alpha");
        const Attribute* b = node(hs).attr("beta");
        if ((a && a->type != AttrType::kFloat) || (b && b->type != AttrType::kFloat)) return std::nullopt;
        t.act.kind = Activation::kHardSwish;
        t.act.alpha = a ? a->f : 0.2f;
        t.act.beta = b ? b->f : 0.5f;
        t.members = {hs, i};
        return t;
      }
      int sg = prod(gate, "Sigmoid");
      if (sg >= 0 && is_op(sg, "Sigmoid", 1) && node(sg).inputs[0] == x) {
        t.act.kind = Activation::kSilu;
        t.members = {sg, i};
        return t;
      }
      return std::nullopt;
    });
  }

  // Node i ends Conv -> activation (the Conv's output read by the activation only).
  std::optional<FusionGroup> match_conv_act(int i) const {
    auto tail = match_act_tail(i, false);
    if (!tail) return std::nullopt;
    int conv = prod(tail->input, "Conv");
    if (conv < 0) return std::nullopt;
    const Node& c = node(conv);
    if (c.inputs.size() < 2 || c.inputs.size() > 3 || c.inputs[0].empty() || c.inputs[1].empty() ||
        (c.inputs.size() == 3 && c.inputs[2].empty()))
      return std::nullopt;
    std::vector<int> members = tail->members;
    members.push_back(conv);
    FusionGroup grp{FusionKind::kConvAct, members, {c.inputs[0], c.inputs[1]}, {}, {}, {}, nullptr};
    if (c.inputs.size() == 3) grp.inputs.push_back(c.inputs[2]);
    grp.constants = tail->constants;
    if (!finish(grp)) return std::nullopt;
    NodeInfo info(g_, c, g_.opset());
    grp.kernel = std::make_unique<ConvActKernel>(find_op("Conv", g_.opset())->make(info), tail->act, c.inputs.size());
    return grp;
  }

  // Node i ends Gemm -> activation (the Gemm's output read by the activation only): float fully
  // connected layers (alpha = beta = 1, transA = 0; C absent or 1-D per GemmActKernel::accepts at
  // run time). A Gemm without an activation stays one node (one kernel already).
  std::optional<FusionGroup> match_gemm_act(int i) const {
    auto tail = match_act_tail(i, false);
    if (!tail) return std::nullopt;
    int gemm = prod(tail->input, "Gemm");
    if (gemm < 0) return std::nullopt;
    if (!is_op(gemm, "Gemm", 2) && !is_op(gemm, "Gemm", 3)) return std::nullopt;
    const Node& n = node(gemm);
    if (n.inputs[0].empty() || n.inputs[1].empty() || (n.inputs.size() == 3 && n.inputs[2].empty()))
      return std::nullopt;
    auto attr_is = [&](const char* name, double want, bool is_float) {
      const Attribute* a = n.attr(name);
      if (!a) return true;
      if (is_float) return a->type == AttrType::kFloat && static_cast<double>(a->f) == want;
      return a->type == AttrType::kInt && static_cast<double>(a->i) == want;
    };
    if (!attr_is("alpha", 1.0, true) || !attr_is("beta", 1.0, true) || !attr_is("transA", 0, false))
      return std::nullopt;
    const Attribute* tb = n.attr("transB");
    if (tb && tb->type != AttrType::kInt) return std::nullopt;
    const bool trans_b = tb && tb->i != 0;
    std::vector<int> members = {gemm};
    members.insert(members.end(), tail->members.begin(), tail->members.end());
    // Flatten(axis >= 0) -> Gemm: the flatten is a view taken inside the kernel (one node less).
    std::string a_in = n.inputs[0];
    int64_t flatten_axis = -1;
    int fl = prod(a_in, "Flatten");
    if (fl >= 0 && is_op(fl, "Flatten", 1)) {
      const Attribute* ax = node(fl).attr("axis");
      int64_t axis = ax ? ax->i : 1;
      if ((!ax || ax->type == AttrType::kInt) && axis >= 0) {
        members.push_back(fl);
        a_in = node(fl).inputs[0];
        flatten_axis = axis;
      }
    }
    FusionGroup grp{FusionKind::kGemmAct, members, {a_in, n.inputs[1]}, {}, {}, {}, nullptr};
    const bool has_c = n.inputs.size() == 3;
    if (has_c) grp.inputs.push_back(n.inputs[2]);
    grp.constants = tail->constants;
    if (!finish(grp)) {
      if (flatten_axis < 0) return std::nullopt;  // the flatten's output has another reader: without it
      grp = FusionGroup{FusionKind::kGemmAct, {gemm}, {n.inputs[0], n.inputs[1]}, {}, {}, {}, nullptr};
      grp.nodes.insert(grp.nodes.end(), tail->members.begin(), tail->members.end());
      if (has_c) grp.inputs.push_back(n.inputs[2]);
      grp.constants = tail->constants;
      flatten_axis = -1;
      if (!finish(grp)) return std::nullopt;
    }
    grp.kernel = std::make_unique<GemmActKernel>(trans_b, has_c, tail->act, flatten_axis);
    return grp;
  }

  // Standalone hard-swish / SiLU chains (after a node other than Conv, or when the Conv's output
  // has other readers).
  std::optional<FusionGroup> match_act_chain(int i) const {
    auto tail = match_act_tail(i, true);
    if (!tail) return std::nullopt;
    FusionGroup grp{tail->act.kind == Activation::kSilu ? FusionKind::kSilu : FusionKind::kHardSwish,
                    tail->members, {tail->input}, {}, {}, {}, nullptr};
    if (!finish(grp) || grp.inputs.size() != 1) return std::nullopt;
    grp.kernel = std::make_unique<ActKernel>(tail->act);
    return grp;
  }

  // Node i is the activation (with_act) or the BatchNormalization ending the chain.
  std::optional<FusionGroup> match_conv_bn(int i, bool with_act) const {
    int bn = i;
    std::optional<ActTail> tail;
    if (with_act) {
      tail = match_act_tail(i, false);
      if (!tail) return std::nullopt;
      bn = prod(tail->input, "BatchNormalization");
      if (bn < 0) return std::nullopt;
    }
    if (!is_op(bn, "BatchNormalization", 5)) return std::nullopt;
    const Node& b = node(bn);
    const int64_t opset = g_.opset();
    if (opset < 9) return std::nullopt;  // `spatial` semantics
    if (const Attribute* tm = b.attr("training_mode"); tm && (tm->type != AttrType::kInt || tm->i != 0))
      return std::nullopt;
    const Attribute* ea = b.attr("epsilon");
    if (ea && ea->type != AttrType::kFloat) return std::nullopt;
    const double eps = ea ? ea->f : 1e-5f;
    int conv = prod(b.inputs[0], "Conv");
    if (conv < 0) return std::nullopt;
    const Node& c = node(conv);
    if (c.inputs.size() < 2 || c.inputs.size() > 3 || c.inputs[0].empty() || c.inputs[1].empty()) return std::nullopt;
    std::vector<int> members = {conv, bn};
    if (tail) members.insert(members.end(), tail->members.begin(), tail->members.end());
    // The Conv bias, when present, is appended by finish() (a value members read from outside).
    FusionGroup grp{FusionKind::kConvBn, members, {c.inputs[0], c.inputs[1], b.inputs[1], b.inputs[2],
                                                   b.inputs[3], b.inputs[4]}, {}, {}, {}, nullptr};
    if (tail) grp.constants = tail->constants;
    if (!finish(grp)) return std::nullopt;
    NodeInfo info(g_, c, opset);
    grp.kernel = std::make_unique<ConvBnKernel>(find_op("Conv", opset)->make(info), eps,
                                                tail ? tail->act : Activation(), c.inputs.size() == 3);
    return grp;
  }

  std::optional<FusionGroup> match_embed_sum(int i) const {
    const Node& r = node(i);
    if (claimed_[i] || !r.domain.empty() || r.op_type != "ReduceSum" || r.outputs.size() != 1 || r.inputs.empty())
      return std::nullopt;
    std::vector<int64_t> axes;
    std::string axes_value;
    if (const Attribute* a = r.attr("axes")) {  // before opset 13
      if (a->type != AttrType::kInts || r.inputs.size() != 1) return std::nullopt;
      axes = a->ints;
    } else if (r.inputs.size() == 2 && !r.inputs[1].empty()) {
      auto c = scalar_const(r.inputs[1]);
      if (!c || !at::isIntegralType(c->second, false)) return std::nullopt;
      axes = {static_cast<int64_t>(c->first)};
      axes_value = r.inputs[1];
    }
    if (axes != std::vector<int64_t>{1}) return std::nullopt;
    const Attribute* kd = r.attr("keepdims");
    if (kd && kd->type != AttrType::kInt) return std::nullopt;
    const bool keepdims = !kd || kd->i != 0;
    int gather = prod(r.inputs[0], "Gather");
    if (gather < 0 || !is_op(gather, "Gather", 2)) return std::nullopt;
    const Attribute* ax = node(gather).attr("axis");
    if (ax && (ax->type != AttrType::kInt || ax->i != 0)) return std::nullopt;
    FusionGroup grp{FusionKind::kEmbedSum, {gather, i}, {node(gather).inputs[0], node(gather).inputs[1]}, {}, {}, {}, nullptr};
    if (!axes_value.empty()) grp.constants = {axes_value};
    if (!finish(grp)) return std::nullopt;
    grp.kernel = std::make_unique<EmbedSumKernel>(keepdims);
    return grp;
  }

  // Node i is a DequantizeLinear reading a QuantizeLinear with the same scale and zero point
  // values, optionally after a Clip (opset 11+, bounds as inputs) read by the QuantizeLinear only.
  std::optional<FusionGroup> match_qdq(int i) const {
    if (!is_op(i, "DequantizeLinear", 3)) return std::nullopt;
    const Node& dq = node(i);
    int q = prod(dq.inputs[0], "QuantizeLinear");
    if (q < 0 || !is_op(q, "QuantizeLinear", 3) || node(q).inputs[1] != dq.inputs[1] || node(q).inputs[2] != dq.inputs[2])
      return std::nullopt;
    const std::string& x = node(q).inputs[0];
    int clip = prod(x, "Clip");
    if (clip >= 0 && g_.opset() >= 11 && is_op(clip, "Clip", 3)) {
      const Node& c = node(clip);
      FusionGroup grp{FusionKind::kQdq, {clip, q, i}, {c.inputs[0], dq.inputs[1], dq.inputs[2], c.inputs[1], c.inputs[2]},
                      {}, {}, {}, nullptr};
      if (finish(grp) && grp.inputs.size() == 5) {
        grp.kernel = std::make_unique<QdqKernel>(true);
        return grp;
      }
    }
    FusionGroup grp{FusionKind::kQdq, {q, i}, {x, dq.inputs[1], dq.inputs[2]}, {}, {}, {}, nullptr};
    if (!finish(grp) || grp.inputs.size() != 3) return std::nullopt;
    grp.kernel = std::make_unique<QdqKernel>(false);
    return grp;
  }

  // A QuantDequant group whose input only it reads and a Conv makes (alone, or ending a ConvAct
  // or ConvBn group), or a Mul or Add node: one ProducerQdq group, the QDQ in place on the
  // producer's result.
  void merge_producer_qdq(std::vector<FusionGroup>& out) {
    std::unordered_map<std::string, size_t> by_output;
    for (size_t k = 0; k < out.size(); ++k) by_output[out[k].output] = k;
    std::vector<char> drop(out.size(), 0);
    for (size_t k = 0; k < out.size(); ++k) {
      if (out[k].kind != FusionKind::kQdq) continue;
      const std::string x = out[k].inputs[0];
      auto u = uses_.find(x);
      auto p = producer_.find(x);
      if (u == uses_.end() || u->second != 1 || graph_outputs_.count(x) || p == producer_.end()) continue;
      FusionGroup prod;
      std::unique_ptr<OpKernel> pk;
      bool fused = true;
      auto h = by_output.find(x);
      if (h != by_output.end()) {  // the end of a convolution group
        FusionGroup& g = out[h->second];
        if (drop[h->second] || (g.kind != FusionKind::kConvAct && g.kind != FusionKind::kConvBn)) continue;
        prod = std::move(g);
        pk = std::move(prod.kernel);
        drop[h->second] = 1;
      } else {  // a Conv, Mul or Add node alone
        const int c = p->second;
        const Node& n = node(c);
        const bool conv = n.op_type == "Conv", binary = n.op_type == "Mul" || n.op_type == "Add";
        if (claimed_[c] || !n.domain.empty() || n.outputs.size() != 1 || (!conv && !binary) ||
            n.inputs.size() < 2 || n.inputs.size() > (conv ? 3u : 2u) ||
            std::any_of(n.inputs.begin(), n.inputs.end(), [](const std::string& v) { return v.empty(); }))
          continue;
        NodeInfo info(g_, n, g_.opset());
        prod = FusionGroup{FusionKind::kConvAct, {c}, n.inputs, x, {}, {}, nullptr};
        if (conv) {
          pk = std::make_unique<ConvActKernel>(find_op("Conv", g_.opset())->make(info), Activation{}, n.inputs.size());
        } else {
          pk = find_op(n.op_type, g_.opset())->make(info);
          fused = false;
        }
        claimed_[c] = 1;
      }
      FusionGroup& q = out[k];
      FusionGroup m{FusionKind::kProducerQdq, prod.nodes, prod.inputs, q.output, prod.interior, prod.constants, nullptr};
      m.nodes.insert(m.nodes.end(), q.nodes.begin(), q.nodes.end());
      std::sort(m.nodes.begin(), m.nodes.end());
      m.inputs.insert(m.inputs.end(), q.inputs.begin() + 1, q.inputs.end());
      m.interior.push_back(x);
      m.interior.insert(m.interior.end(), q.interior.begin(), q.interior.end());
      m.constants.insert(m.constants.end(), q.constants.begin(), q.constants.end());
      m.kernel = std::make_unique<ProducerQdqKernel>(std::move(pk), fused, prod.inputs.size(),
                                                     std::unique_ptr<QdqKernel>(static_cast<QdqKernel*>(q.kernel.release())));
      out[k] = std::move(m);
    }
    std::vector<FusionGroup> kept;
    for (size_t k = 0; k < out.size(); ++k)
      if (!drop[k]) kept.push_back(std::move(out[k]));
    out = std::move(kept);
  }

  std::optional<FusionGroup> match_add_relu(int i) const {
    if (!is_op(i, "Relu", 1)) return std::nullopt;
    int add = prod(node(i).inputs[0], "Add");
    if (add < 0 || !is_op(add, "Add", 2)) return std::nullopt;
    FusionGroup grp{FusionKind::kAddRelu, {add, i}, {node(add).inputs[0], node(add).inputs[1]}, {}, {}, {}, nullptr};
    if (!finish(grp)) return std::nullopt;
    grp.kernel = std::make_unique<AddReluKernel>();
    return grp;
  }

  std::optional<FusionGroup> match_gelu(int i) const {
    if (!is_op(i, "Mul", 2)) return std::nullopt;
    const Node& outer = node(i);
    // out = Mul(inner, z) with inner = Mul(p, q): the three leaves {p, q, z} are x, 0.5 and
    // (1 + erf(x / sqrt2)) in some order.
    return either(outer, [&](const std::string& inner_v, const std::string& z) -> std::optional<FusionGroup> {
      int inner = prod(inner_v, "Mul");
      if (inner < 0 || !is_op(inner, "Mul", 2)) return std::nullopt;
      std::vector<std::string> leaves = {node(inner).inputs[0], node(inner).inputs[1], z};
      for (int h = 0; h < 3; ++h) {
        auto half_t = float_const_eq(leaves[h], 0.5);
        if (!half_t) continue;
        for (int a = 0; a < 3; ++a) {
          if (a == h) continue;
          const std::string& x = leaves[3 - h - a];
          int add = prod(leaves[a], "Add");
          if (add < 0 || !is_op(add, "Add", 2)) continue;
          auto grp = either(node(add), [&](const std::string& e, const std::string& one) -> std::optional<FusionGroup> {
            auto one_t = float_const_eq(one, 1.0);
            int erf = prod(e, "Erf");
            if (!one_t || *one_t != *half_t || erf < 0 || !is_op(erf, "Erf", 1)) return std::nullopt;
            const std::string& t = node(erf).inputs[0];
            int scale = prod(t, "Div");
            std::string c;
            if (scale >= 0 && is_op(scale, "Div", 2) && node(scale).inputs[0] == x) {
              c = node(scale).inputs[1];
              auto ct = float_const_eq(c, std::sqrt(2.0));
              if (!ct || *ct != *half_t) return std::nullopt;
            } else {
              scale = prod(t, "Mul");
              if (scale < 0 || !is_op(scale, "Mul", 2)) return std::nullopt;
              const Node& sn = node(scale);
              c = sn.inputs[0] == x ? sn.inputs[1] : sn.inputs[1] == x ? sn.inputs[0] : std::string();
              if (c.empty()) return std::nullopt;
              auto ct = float_const_eq(c, 1.0 / std::sqrt(2.0));
              if (!ct || *ct != *half_t) return std::nullopt;
            }
            FusionGroup grp{FusionKind::kGelu, {scale, erf, add, inner, i}, {x}, {}, {}, {}, nullptr};
            grp.constants = {c, one, leaves[h]};
            if (!finish(grp)) return std::nullopt;
            // x itself must come from outside (e.g. not be the inner product).
            if (std::find(grp.interior.begin(), grp.interior.end(), x) != grp.interior.end()) return std::nullopt;
            grp.kernel = std::make_unique<GeluKernel>(*half_t);
            return grp;
          });
          if (grp) return grp;
        }
      }
      return std::nullopt;
    });
  }

  std::optional<FusionGroup> match_layer_norm(int i) const {
    if (!is_op(i, "Add", 2)) return std::nullopt;
    return either(node(i), [&](const std::string& yg, const std::string& beta) -> std::optional<FusionGroup> {
      int mul = prod(yg, "Mul");
      if (mul < 0 || !is_op(mul, "Mul", 2)) return std::nullopt;
      return either(node(mul), [&](const std::string& y, const std::string& gamma) -> std::optional<FusionGroup> {
        int div = prod(y, "Div");
        if (div < 0 || !is_op(div, "Div", 2)) return std::nullopt;
        const std::string& d = node(div).inputs[0];
        int sqrt = prod(node(div).inputs[1], "Sqrt");
        int sub = prod(d, "Sub");
        if (sqrt < 0 || sub < 0 || !is_op(sqrt, "Sqrt", 1) || !is_op(sub, "Sub", 2)) return std::nullopt;
        const std::string& x = node(sub).inputs[0];
        int rm1 = prod(node(sub).inputs[1], "ReduceMean");
        if (rm1 < 0 || node(rm1).inputs[0] != x) return std::nullopt;
        int adde = prod(node(sqrt).inputs[0], "Add");
        if (adde < 0 || !is_op(adde, "Add", 2)) return std::nullopt;
        return either(node(adde), [&](const std::string& v, const std::string& eps_v) -> std::optional<FusionGroup> {
          auto eps = scalar_const(eps_v);
          int rm2 = prod(v, "ReduceMean");
          if (!eps || !is_float_type(eps->second) || !std::isfinite(eps->first) || eps->first < 0 || rm2 < 0)
            return std::nullopt;
          int pw = prod(node(rm2).inputs[0], "Pow");
          if (pw < 0 || !is_op(pw, "Pow", 2) || node(pw).inputs[0] != d) return std::nullopt;
          auto two = scalar_const(node(pw).inputs[1]);
          if (!two || two->first != 2.0) return std::nullopt;
          auto ax1 = reduce_mean_axis(rm1), ax2 = reduce_mean_axis(rm2);
          if (!ax1 || !ax2 || *ax1 != *ax2) return std::nullopt;
          // gamma/beta known now must be 1-D (the run-time check covers the others).
          for (const std::string* p : {&gamma, &beta}) {
            auto it = g_.initializers.find(*p);
            if (it != g_.initializers.end() && it->second.dim() != 1) return std::nullopt;
          }
          FusionGroup grp{FusionKind::kLayerNorm, {rm1, sub, pw, rm2, adde, sqrt, div, mul, i},
                          {x, gamma, beta}, {}, {}, {}, nullptr};
          grp.constants = {node(pw).inputs[1], eps_v};
          if (node(rm1).inputs.size() == 2) grp.constants.push_back(node(rm1).inputs[1]);
          if (node(rm2).inputs.size() == 2) grp.constants.push_back(node(rm2).inputs[1]);
          if (!finish(grp)) return std::nullopt;
          for (const std::string* p : {&x, &gamma, &beta})
            if (std::find(grp.interior.begin(), grp.interior.end(), *p) != grp.interior.end()) return std::nullopt;
          grp.kernel = std::make_unique<LayerNormKernel>(*ax1, eps->first, eps->second);
          return grp;
        });
      });
    });
  }

  const Graph& g_;
  std::unordered_map<std::string, int> producer_;
  std::unordered_map<std::string, int> uses_;
  std::set<std::string> graph_outputs_;
  std::vector<char> claimed_;
  bool legacy_;  // MIXQ_EXEC_LEGACY: only the fusions that existed before the Conv + activation ones
};

}  // namespace

std::vector<FusionGroup> find_fusions(const Graph& g) { return Matcher(g).run(); }

}  // namespace mixq
