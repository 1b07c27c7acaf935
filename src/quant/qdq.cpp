// QuantizedModel -> QDQ graph (IR only; export.cpp serializes it). Layout decisions are documented
// on qdq_graph in quant/qdq.h.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "mixq/error.h"
#include "quant/qdq.h"

#include "quant/multipoint.h"
#include "quant/qscheme.h"

namespace mixq {

namespace {

constexpr int64_t kMaxOpset = 17;  // as the importer
constexpr int64_t kQdqOpset = 13;  // per-axis DequantizeLinear

// Fresh names, unique among all values and node names of the graph.
class Names {
 public:
  explicit Names(const Graph& g) {
    for (const auto& vi : g.inputs) used_.insert(vi.name);
    for (const auto& vi : g.outputs) used_.insert(vi.name);
    for (const auto& kv : g.initializers) used_.insert(kv.first);
    for (const auto& kv : g.value_info) used_.insert(kv.first);
    for (const auto& n : g.nodes) {
      used_.insert(n.name);
      for (const auto& v : n.inputs) used_.insert(v);
      for (const auto& v : n.outputs) used_.insert(v);
    }
  }
  std::string fresh(const std::string& base) {
    std::string name = base;
    for (int k = 1; used_.count(name); ++k) name = base + "_" + std::to_string(k);
    used_.insert(name);
    return name;
  }

 private:
  std::set<std::string> used_;
};


// Appends nodes and initializers to a graph under fresh names.
struct Builder {
  Graph& g;
  Names& names;

  std::string init(const std::string& base, const at::Tensor& t) {
    std::string name = names.fresh(base);
    g.initializers[name] = t.contiguous();
    return name;
  }
  std::string int64s(const std::string& base, const std::vector<int64_t>& v) {
    return init(base, at::tensor(v, at::kLong));
  }
  // Adds node `op` reading `inputs` to `dst`; returns its output (named `out` exactly when given,
  // else a fresh name from `out_base`).
  std::string node(std::vector<Node>& dst, const std::string& op, std::vector<std::string> inputs,
                   const std::string& out_base, std::map<std::string, Attribute> attrs = {},
                   const std::string& exact_out = "") {
    Node n;
    n.op_type = op;
    n.name = names.fresh(out_base + "_" + op);
    n.inputs = std::move(inputs);
    n.outputs = {exact_out.empty() ? names.fresh(out_base) : exact_out};
    n.attrs = std::move(attrs);
    dst.push_back(std::move(n));
    return dst.back().outputs[0];
  }
};

const ValueInfo* find_value_info(const Graph& g, const std::string& v) {
  for (const auto& vi : g.inputs)
    if (vi.name == v) return &vi;
  for (const auto& vi : g.outputs)
    if (vi.name == v) return &vi;
  auto it = g.value_info.find(v);
  return it == g.value_info.end() ? nullptr : &it->second;
}

// The floating type of value v where the model says so, else float32.
at::ScalarType float_type_of(const Graph& g, const std::string& v) {
  if (const at::Tensor* t = g.is_initializer(v) ? &g.initializers.at(v) : nullptr)
    if (at::isFloatingType(t->scalar_type())) return t->scalar_type();
  const ValueInfo* vi = find_value_info(g, v);
  if (vi && (vi->dtype == DType::kFloat16 || vi->dtype == DType::kDouble ||
             vi->dtype == DType::kBFloat16))
    return scalar_type_for(vi->dtype, v);
  return at::kFloat;
}

// ---------------------------------------------------------------------------------------------
// Raising the default-domain opset to 13: rewrite the ops whose inputs/attributes changed.

[[noreturn]] void refuse_upgrade(const Graph& g, const Node& n, int64_t from,
                                 const std::string& why) {
  throw Error(ErrorKind::kUnsupported,
              detail::concat(g.describe(n), ": the QDQ export needs opset ", kQdqOpset,
                             " and the model's opset ", from, " cannot be raised automatically: ",
                             why, " (re-export the float model with opset_version=13)"));
}

// Moves list attribute `key` (ints) to a new int64 input at position `pos` ("" fills gaps).
void attr_to_input(Builder& b, Node& n, const std::string& key, size_t pos) {
  const Attribute* a = n.attr(key);
  if (!a) return;
  std::string name = b.int64s(n.name + "_" + key,
                              a->type == AttrType::kInt ? std::vector<int64_t>{a->i} : a->ints);
  if (n.inputs.size() <= pos) n.inputs.resize(pos + 1);
  n.inputs[pos] = name;
  n.attrs.erase(key);
}

void upgrade_to_opset13(Graph& g, Names& names) {
  const int64_t from = g.opset();
  Builder b{g, names};
  std::vector<Node> out;
  out.reserve(g.nodes.size());
  for (Node& n : g.nodes) {
    if (!n.domain.empty()) {
      out.push_back(std::move(n));
      continue;
    }
    const std::string& op = n.op_type;
    if (from < 6) n.attrs.erase("consumed_inputs");
    if (op == "Upsample" || (op == "Resize" && from < 11))
      refuse_upgrade(g, n, from, "its coordinate semantics changed in opset 11");
    if (op == "BatchNormalization") {
      n.attrs.erase("is_test");
      if (from < 9) {
        const Attribute* s = n.attr("spatial");
        if (s && s->i == 0)
          refuse_upgrade(g, n, from, "spatial=0 batch normalization was removed in opset 9");
        n.attrs.erase("spatial");
      }
    } else if (op == "Dropout" && from < 12) {
      if (from < 7 && (!n.attr("is_test") || n.attr("is_test")->i == 0))
        refuse_upgrade(g, n, from, "is_test=0 is training-mode dropout");
      if (n.outputs.size() > 1 && !n.outputs[1].empty())
        refuse_upgrade(g, n, from, "its mask output changed type in opsets 10 and 12");
      n.op_type = "Identity";  // inference dropout
      n.attrs.clear();
      n.inputs.resize(1);
      n.outputs.resize(1);
    } else if (op == "Clip" && from < 11) {
      const at::ScalarType t = float_type_of(g, n.inputs[0]);
      std::vector<std::string> in = {n.inputs[0], "", ""};
      if (const Attribute* a = n.attr("min"))
        in[1] = b.init(n.name + "_min", at::scalar_tensor(a->f, t));
      if (const Attribute* a = n.attr("max"))
        in[2] = b.init(n.name + "_max", at::scalar_tensor(a->f, t));
      while (!in.empty() && in.back().empty()) in.pop_back();
      n.inputs = in;
      n.attrs.erase("min");
      n.attrs.erase("max");
    } else if ((op == "Squeeze" || op == "Unsqueeze" || op == "ReduceSum") && from < 13) {
      attr_to_input(b, n, "axes", 1);
    } else if (op == "Split" && from < 13) {
      if (from < 2 && n.inputs.size() > 1)
        refuse_upgrade(g, n, from, "Split-1 takes 'split' as an input");
      attr_to_input(b, n, "split", 1);
    } else if (op == "Pad" && from < 11) {
      const Attribute* pads = n.attr("pads") ? n.attr("pads") : n.attr("paddings");
      if (!pads) refuse_upgrade(g, n, from, "no 'pads' attribute");
      std::vector<std::string> in = {n.inputs[0], b.int64s(n.name + "_pads", pads->ints)};
      const Attribute* mode = n.attr("mode");
      const Attribute* value = n.attr("value");
      if ((!mode || mode->s == "constant") && value && value->f != 0)
        in.push_back(
            b.init(n.name + "_value", at::scalar_tensor(value->f, float_type_of(g, n.inputs[0]))));
      n.inputs = in;
      n.attrs.erase("pads");
      n.attrs.erase("paddings");
      n.attrs.erase("value");
    } else if (op == "Slice" && from < 10) {
      std::vector<std::string> in = {n.inputs[0]};
      for (const char* key : {"starts", "ends", "axes"}) {
        const Attribute* a = n.attr(key);
        if (!a) continue;
        in.push_back(b.int64s(n.name + "_" + key, a->ints));
        n.attrs.erase(key);
      }
      n.inputs = in;
    } else if (op == "TopK" && from < 10) {
      attr_to_input(b, n, "k", 1);  // TopK-10 takes K as a 1-D int64 tensor of one value
    } else if ((op == "Softmax" || op == "LogSoftmax" || op == "Hardmax") && from < 13) {
      // Before 13: flatten to 2-D at `axis` (default 1), normalize rows, reshape back. From 13:
      // along `axis` only (default -1). Equal when axis is the last one.
      const Attribute* a = n.attr("axis");
      const int64_t axis = a ? a->i : 1;
      const ValueInfo* vi = find_value_info(g, n.inputs[0]);
      const int64_t rank = vi && vi->has_shape ? static_cast<int64_t>(vi->dims.size()) : -1;
      if (axis == -1 || (rank > 0 && (axis == rank - 1 || axis == -1))) {
        n.attrs["axis"] = int_attr(-1);
      } else {
        const std::string x = n.inputs[0], y = n.outputs[0];
        std::string shape = b.node(out, "Shape", {x}, x + "_shape");
        std::string flat = b.node(out, "Flatten", {x}, x + "_2d", {{"axis", int_attr(axis)}});
        std::string y2 = b.node(out, op, {flat}, y + "_2d", {{"axis", int_attr(-1)}});
        b.node(out, "Reshape", {y2, shape}, y, {}, y);
        continue;  // the original node is replaced
      }
    }
    out.push_back(std::move(n));
  }
  g.nodes = std::move(out);
  g.opsets[""] = kQdqOpset;
}

// ---------------------------------------------------------------------------------------------
// Parameter checks and layouts.

void check_integers(const at::Tensor& t, double lo, double hi, const std::string& what) {
  if (t.numel() == 0) return;
  at::Tensor d = t.to(at::kDouble);
  const bool integral = at::equal(d, d.round());
  const double mn = d.min().item<double>(), mx = d.max().item<double>();
  MIXQ_CHECK(integral && mn >= lo && mx <= hi, ErrorKind::kInvalidArgument, what,
             " must hold integers in [", lo, ", ", hi, "] (found ",
             integral ? "" : "non-integers, ", "range [", mn, ", ", mx, "])");
}

void check_scales(const at::Tensor& s, const std::string& what) {
  at::Tensor d = s.to(at::kDouble);
  MIXQ_CHECK(s.numel() > 0 && at::isfinite(d).all().item<bool>() && (d > 0).all().item<bool>(),
             ErrorKind::kInvalidArgument, what, " must be finite and > 0");
}

// A weight's quantization geometry on the 2-D view W2 [C, K] of quant/qscheme.h: W with the
// channel axis moved first (the other axes keep their order), reshaped.
struct Geometry {
  int64_t rank = 0, axis = 0;
  int64_t C = 1, K = 1, gs = 1, G = 1;  // channels, reduction length, group size, groups
  std::vector<int64_t> perm;            // [axis, the other axes in order]
  std::vector<int64_t> permuted;        // W's shape permuted by perm
  bool identity() const { return axis == 0; }
};

Geometry geometry(const QScheme& s, const at::Tensor& w) {
  const std::vector<int64_t> shape = w.sizes().vec();
  const QLayout L = q_layout(s, shape);  // validates bits, axis, group size
  Geometry geo;
  geo.rank = static_cast<int64_t>(shape.size());
  if (s.granularity == Granularity::kPerTensor) return geo;
  geo.axis = s.axis < 0 ? s.axis + geo.rank : s.axis;
  geo.C = L.channels;
  geo.K = L.k;
  geo.gs = L.group_size;
  geo.G = L.groups;
  geo.perm = {geo.axis};
  for (int64_t d = 0; d < geo.rank; ++d)
    if (d != geo.axis) geo.perm.push_back(d);
  for (int64_t d : geo.perm) geo.permuted.push_back(shape[static_cast<size_t>(d)]);
  return geo;
}

// Scale or zero point as a flat float tensor: [] per tensor, [C] per channel, [C*G] per group
// (the row-major [C, G] of quant/scheme.h).
at::Tensor flat_params(const at::Tensor& p, const QScheme& s, const Geometry& geo,
                       const std::string& what) {
  MIXQ_CHECK(p.defined(), ErrorKind::kInvalidArgument, what, " is missing");
  const at::Tensor t = p.to(at::kFloat).contiguous();
  const int64_t want = s.granularity == Granularity::kPerTensor    ? 1
                       : s.granularity == Granularity::kPerChannel ? geo.C
                                                                   : geo.C * geo.G;
  MIXQ_CHECK(t.numel() == want, ErrorKind::kInvalidArgument, what, ": ",
             granularity_name(s.granularity), " needs ", want, " values, got shape ", t.sizes());
  return s.granularity == Granularity::kPerTensor ? t.reshape({}) : t.reshape({want});
}

// Flat parameters laid out against W: broadcastable per tensor / per channel; per group the full
// shape of W (each (c, g) value repeated over its group).
at::Tensor expand_params(const at::Tensor& flat, const QScheme& s, const Geometry& geo) {
  if (s.granularity == Granularity::kPerTensor) return flat;
  if (s.granularity == Granularity::kPerChannel) {
    std::vector<int64_t> view(static_cast<size_t>(geo.rank), 1);
    view[static_cast<size_t>(geo.axis)] = geo.C;
    return flat.view(view);
  }
  at::Tensor w2 =
      flat.view({geo.C, geo.G}).repeat_interleave(geo.gs, 1).slice(1, 0, geo.K);  // [C, K]
  std::vector<int64_t> inv(geo.perm.size());
  for (size_t i = 0; i < geo.perm.size(); ++i)
    inv[static_cast<size_t>(geo.perm[i])] = static_cast<int64_t>(i);
  return w2.reshape(geo.permuted).permute(inv).contiguous();
}

// s * (q - z) in float32, as DequantizeLinear computes it.
at::Tensor dequantize_codes(const at::Tensor& codes, const at::Tensor& scale_flat,
                            const at::Tensor& zp_flat, const QScheme& s, const Geometry& geo) {
  return (codes.to(at::kFloat) - expand_params(zp_flat, s, geo)) *
         expand_params(scale_flat, s, geo);
}

// An embedding table under a row-wise scheme (qmodel.h). Both forms are exact in opset 13:
//   rowwise: codes uint8 [R, D] -> DequantizeLinear(scale [R] fp16-valued float32, zero point 0,
//            axis 0) -> Add(offset [R, 1]) = scale * q + offset, one multiply then one add in
//            float32, bit for bit what quant/rowwise_ref.h computes. (The offset is a float, not a
//            multiple of the scale, so it cannot be an integer zero point; the Add carries it.)
//   codebook: GatherElements(centroids [R, 2^b], codes int64 [R, D], axis 1).
std::string emit_table(Builder& b, const QuantizedWeight& qw, const at::Tensor& w, std::vector<Node>& dst) {
  const std::string what = "table '" + qw.weight + "' of node '" + qw.node + "'";
  const int64_t rows = w.size(0);
  MIXQ_CHECK(w.dim() == 2 && qw.codes.defined() && qw.codes.sizes() == w.sizes(), ErrorKind::kInvalidArgument, what,
             ": codes do not match the [rows, dim] table");
  check_integers(qw.codes, 0, static_cast<double>((int64_t(1) << qw.scheme.bits) - 1), what + " codes");
  const std::string& name = qw.weight;
  std::string out;
  if (qw.embed == EmbedScheme::kCodebook) {
    MIXQ_CHECK(qw.codebook.defined() && qw.codebook.dim() == 2 && qw.codebook.size(0) == rows,
               ErrorKind::kInvalidArgument, what, ": codebook must be [rows, 2^bits]");
    std::string c = b.init(name + "_codebook", qw.codebook.to(at::kFloat));
    std::string q = b.init(name + "_codes", qw.codes.to(at::kLong));
    out = b.node(dst, "GatherElements", {c, q}, name + "_dq", {{"axis", int_attr(1)}});
  } else {
    MIXQ_CHECK(qw.offset.defined() && qw.offset.numel() == rows, ErrorKind::kInvalidArgument, what,
               ": offset must hold one value per row");
    const at::Tensor scale = qw.params.scale.to(at::kFloat).reshape({rows});
    check_scales(scale, what + " scale");
    std::string sc = b.init(name + "_scale", scale);
    std::string zp = b.init(name + "_zero_point", at::zeros({rows}, at::kByte));
    std::string q = b.init(name + "_quantized", qw.codes.to(at::kByte));
    out = b.node(dst, "DequantizeLinear", {q, sc, zp}, name + "_dq_scaled", {{"axis", int_attr(0)}});
    std::string off = b.init(name + "_offset", qw.offset.to(at::kFloat).reshape({rows, 1}));
    out = b.node(dst, "Add", {out, off}, name + "_dq");
  }
  if (w.scalar_type() != at::kFloat)
    out = b.node(dst, "Cast", {out}, name + "_dq_cast",
                 {{"to", int_attr(static_cast<int64_t>(dtype_of(w.scalar_type())))}});
  return out;
}

// Emits the nodes computing the dequantized weight into `dst`; returns the value the layer reads.
std::string emit_weight(Builder& b, const QuantizedWeight& qw, const at::Tensor& w,
                        std::vector<Node>& dst) {
  if (qw.embed != EmbedScheme::kNone) return emit_table(b, qw, w, dst);
  const QScheme& s = qw.scheme;
  const std::string what = "quantized weight '" + qw.weight + "' of node '" + qw.node + "'";
  MIXQ_CHECK((s.bits >= 2 && s.bits <= 8) || s.bits == 16, ErrorKind::kInvalidArgument, what, ": ",
             s.bits, " bits is not supported (2..8 or 16)");
  MIXQ_CHECK(qw.codes.defined() && qw.codes.sizes() == w.sizes(), ErrorKind::kInvalidArgument, what,
             ": codes shape ", qw.codes.defined() ? qw.codes.sizes() : at::IntArrayRef{},
             " differs from the weight's ", w.sizes());
  check_integers(qw.codes, static_cast<double>(s.qmin()), static_cast<double>(s.qmax()),
                 what + " codes");
  const Geometry geo = geometry(s, w);
  const at::Tensor scale = flat_params(qw.params.scale, s, geo, what + " scale");
  const at::Tensor zp = flat_params(qw.params.zero_point, s, geo, what + " zero point");
  check_scales(scale, what + " scale");
  const std::string& name = qw.weight;

  if (s.bits == 16) {
    // Opset 13 has no int16 QuantizeLinear/DequantizeLinear: the 16-bit grid is kept as the
    // dequantized float values s * (q - z) (exactly what the simulation uses).
    at::Tensor dq = dequantize_codes(qw.codes, scale, zp, s, geo).to(w.scalar_type());
    return b.init(name + "_dequantized", dq);
  }

  const at::ScalarType qtype = s.symmetric ? at::kChar : at::kByte;
  check_integers(zp, s.symmetric ? -128 : 0, s.symmetric ? 127 : 255, what + " zero point");
  std::string scale_name = b.init(name + "_scale", scale);
  std::string zp_name = b.init(name + "_zero_point", zp.to(qtype));
  std::string out;
  if (s.granularity != Granularity::kPerGroup) {
    std::string q = b.init(name + "_quantized", qw.codes.to(qtype));
    std::map<std::string, Attribute> attrs;
    if (s.granularity == Granularity::kPerChannel) attrs["axis"] = int_attr(geo.axis);
    out = b.node(dst, "DequantizeLinear", {q, scale_name, zp_name}, name + "_dq", attrs);
  } else {
    // W -> W2 [C, K] (channel axis first) -> K padded to G*gs with z -> [C*G, gs]: one row per
    // (channel, group), dequantized per channel along axis 0 with the C*G parameters; then
    // Reshape [C, G*gs] -> Slice to K (when padded) -> Reshape to permuted W -> Transpose back
    // (when the channel axis is not 0). With no padding and axis 0 one Reshape to W's shape.
    at::Tensor c = qw.codes.to(at::kFloat).permute(geo.perm).reshape({geo.C, geo.K});
    const int64_t Kp = geo.G * geo.gs;
    if (Kp > geo.K) {
      at::Tensor last_z = zp.view({geo.C, geo.G}).select(1, geo.G - 1).view({geo.C, 1});
      c = at::cat({c, last_z.expand({geo.C, Kp - geo.K})}, 1);
    }
    std::string q = b.init(name + "_quantized", c.reshape({geo.C * geo.G, geo.gs}).to(qtype));
    out = b.node(dst, "DequantizeLinear", {q, scale_name, zp_name}, name + "_dq_groups",
                 {{"axis", int_attr(0)}});
    if (Kp == geo.K && geo.identity()) {
      out = b.node(dst, "Reshape", {out, b.int64s(name + "_shape", w.sizes().vec())}, name + "_dq");
    } else {
      if (Kp > geo.K) {
        out = b.node(dst, "Reshape", {out, b.int64s(name + "_rows_shape", {geo.C, Kp})},
                     name + "_dq_padded");
        out = b.node(dst, "Slice",
                     {out, b.int64s(name + "_slice_starts", {0}),
                      b.int64s(name + "_slice_ends", {geo.K}), b.int64s(name + "_slice_axes", {1})},
                     name + "_dq_rows");
      }
      out = b.node(dst, "Reshape", {out, b.int64s(name + "_permuted_shape", geo.permuted)},
                   geo.identity() ? name + "_dq" : name + "_dq_permuted");
      if (!geo.identity()) {
        std::vector<int64_t> inv(geo.perm.size());
        for (size_t i = 0; i < geo.perm.size(); ++i)
          inv[static_cast<size_t>(geo.perm[i])] = static_cast<int64_t>(i);
        out = b.node(dst, "Transpose", {out}, name + "_dq", {{"perm", ints_attr(inv)}});
      }
    }
  }
  // Multipoint levels (quant/multipoint.h): one DequantizeLinear per level on the layer's grid
  // (per channel on the extra axis, zero point z), added in level order: exactly the float32 sum
  // the simulation computes (dequantize_weight).
  for (size_t m = 0; m < qw.extra.size(); ++m) {
    const auto& L = qw.extra[m];
    const std::string lv = name + "_mp" + std::to_string(m);
    const int64_t ax = qw.extra_axis < 0 ? qw.extra_axis + w.dim() : qw.extra_axis;
    MIXQ_CHECK(L.codes.sizes() == w.sizes() && L.scale.numel() == w.size(ax), ErrorKind::kInvalidArgument, what,
               ": multipoint level ", m, " does not match the weight");
    check_integers(L.codes, static_cast<double>(s.qmin()), static_cast<double>(s.qmax()), what + " multipoint codes");
    check_scales(L.scale.to(at::kFloat), what + " multipoint scale");
    const int64_t z = multipoint_zero_point(s);
    std::string q = b.init(lv + "_quantized", L.codes.to(qtype));
    std::string sc = b.init(lv + "_scale", L.scale.to(at::kFloat).reshape({-1}));
    std::string zn = b.init(lv + "_zero_point", at::full({w.size(ax)}, z, at::kLong).to(qtype));
    std::string d = b.node(dst, "DequantizeLinear", {q, sc, zn}, lv + "_dq", {{"axis", int_attr(ax)}});
    out = b.node(dst, "Add", {out, d}, lv + "_sum");
  }
  if (w.scalar_type() != at::kFloat)
    out = b.node(dst, "Cast", {out}, name + "_dq_cast",
                 {{"to", int_attr(static_cast<int64_t>(dtype_of(w.scalar_type())))}});
  return out;
}

// Emits T -> ... -> T_dq into `dst`; returns T_dq.
std::string emit_activation(Builder& b, const QuantizedActivation& qa, std::vector<Node>& dst) {
  const QScheme& s = qa.scheme;
  const std::string& t = qa.tensor;
  const std::string what = "quantized activation '" + t + "'";
  MIXQ_CHECK((s.bits >= 2 && s.bits <= 8) || s.bits == 16, ErrorKind::kInvalidArgument, what, ": ",
             s.bits, " bits is not supported (2..8 or 16)");
  MIXQ_CHECK(qa.params.scale.defined() && qa.params.scale.numel() == 1 &&
                 qa.params.zero_point.defined() && qa.params.zero_point.numel() == 1,
             ErrorKind::kInvalidArgument, what,
             ": activations are quantized per tensor (one scale and "
             "zero point)");
  const at::Tensor scale = qa.params.scale.to(at::kFloat).reshape({});
  const at::Tensor zp = qa.params.zero_point.to(at::kFloat).reshape({});
  check_scales(scale, what + " scale");
  check_integers(zp, static_cast<double>(s.qmin()), static_cast<double>(s.qmax()),
                 what + " zero point");
  const float sf = scale.item<float>();
  const float zf = zp.item<float>();
  const float lo = static_cast<float>(static_cast<double>(s.qmin()) - zf);  // integers: exact
  const float hi = static_cast<float>(static_cast<double>(s.qmax()) - zf);

  if (s.bits == 16) {
    // No int16 QuantizeLinear in opset 13: clip(round(x / s), qmin - z, qmax - z) * s in float
    // ops, equal to DQ(Q(x)).
    const std::string scale_name = b.init(t + "_scale", scale);
    std::string x = b.node(dst, "Div", {t, scale_name}, t + "_scaled");
    x = b.node(dst, "Round", {x}, t + "_rounded");
    x = b.node(
        dst, "Clip",
        {x, b.init(t + "_qmin", at::scalar_tensor(lo)), b.init(t + "_qmax", at::scalar_tensor(hi))},
        t + "_clipped");
    return b.node(dst, "Mul", {x, scale_name}, t + "_dq");
  }
  const at::ScalarType qtype = s.symmetric ? at::kChar : at::kByte;
  std::string x = t;
  if (s.bits < 8) {
    // QuantizeLinear saturates at the 8-bit limits; clipping at s * (qmin - z) and s * (qmax - z)
    // first makes it saturate at the b-bit ones (those bounds quantize to qmin and qmax exactly).
    at::Tensor cmin = at::scalar_tensor(lo * sf), cmax = at::scalar_tensor(hi * sf);
    x = b.node(dst, "Clip", {x, b.init(t + "_clip_min", cmin), b.init(t + "_clip_max", cmax)},
               t + "_clipped");
  }
  std::string scale_name = b.init(t + "_scale", scale);
  std::string zp_name = b.init(t + "_zero_point", zp.to(qtype));
  std::string q = b.node(dst, "QuantizeLinear", {x, scale_name, zp_name}, t + "_quantized");
  return b.node(dst, "DequantizeLinear", {q, scale_name, zp_name}, t + "_dq");
}

}  // namespace

Graph qdq_graph(const QuantizedModel& qm, std::map<std::string, std::string>* dq_names) {
  Graph g = qm.graph;  // shares the tensors; nothing below writes into them
  const int64_t opset = g.opset();
  MIXQ_CHECK(opset <= kMaxOpset, ErrorKind::kUnsupported, "the model uses opset ", opset,
             "; mixq exports opsets up to ", kMaxOpset);
  Names names(g);
  if (opset < kQdqOpset) upgrade_to_opset13(g, names);
  Builder b{g, names};

  std::map<std::string, size_t> node_index;
  for (size_t i = 0; i < g.nodes.size(); ++i) node_index[g.nodes[i].name] = i;
  std::vector<std::vector<Node>> before(g.nodes.size()), after(g.nodes.size());
  std::vector<Node> head;

  std::set<std::string> layers;
  for (const auto& qw : qm.weights) {
    auto it = node_index.find(qw.node);
    MIXQ_CHECK(it != node_index.end(), ErrorKind::kInvalidArgument, "quantized weight '", qw.weight,
               "' names node '", qw.node, "', which the graph does not have");
    Node& layer = g.nodes[it->second];
    auto w_it = g.initializers.find(qw.weight);
    auto slot = std::find(layer.inputs.begin(), layer.inputs.end(), qw.weight);
    MIXQ_CHECK(w_it != g.initializers.end() && slot != layer.inputs.end(),
               ErrorKind::kInvalidArgument, "quantized weight '", qw.weight,
               "' is not an initializer read by ", g.describe(layer));
    *slot = emit_weight(b, qw, w_it->second, before[it->second]);
    layers.insert(qw.node);
  }

  std::set<std::string> done;
  for (const auto& qa : qm.activations) {
    const std::string& t = qa.tensor;
    MIXQ_CHECK(done.insert(t).second, ErrorKind::kInvalidArgument, "activation '", t,
               "' is quantized twice");
    const int p = g.producer_of(t);
    bool known = p >= 0 || g.is_initializer(t);
    for (const auto& vi : g.inputs) known = known || vi.name == t;
    MIXQ_CHECK(known, ErrorKind::kInvalidArgument, "quantized activation '", t,
               "' is not a value of the graph");
    std::vector<Node> chain;
    std::string t_dq;
    for (auto& n : g.nodes) {
      if (!layers.count(n.name) && !qa.all_readers) continue;
      for (auto& in : n.inputs) {
        if (in != t) continue;
        if (t_dq.empty()) t_dq = emit_activation(b, qa, chain);
        in = t_dq;
      }
    }
    if (dq_names && !t_dq.empty()) (*dq_names)[t] = t_dq;
    auto& dst = p >= 0 ? after[static_cast<size_t>(p)] : head;
    for (auto& n : chain) dst.push_back(std::move(n));
  }

  std::vector<Node> nodes = std::move(head);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    for (auto& n : before[i]) nodes.push_back(std::move(n));
    nodes.push_back(std::move(g.nodes[i]));
    for (auto& n : after[i]) nodes.push_back(std::move(n));
  }
  g.nodes = std::move(nodes);

  // Float weights no node reads any more are dropped.
  std::set<std::string> read;
  for (const auto& n : g.nodes) read.insert(n.inputs.begin(), n.inputs.end());
  for (const auto& o : g.outputs) read.insert(o.name);
  for (const auto& qw : qm.weights)
    if (!read.count(qw.weight)) g.initializers.erase(qw.weight);
  g.metadata["mixq.quantized"] = "qdq";
  return g;
}

}  // namespace mixq
