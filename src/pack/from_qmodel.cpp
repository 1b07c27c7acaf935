#include "pack/from_qmodel.h"

#include <ATen/ATen.h>

#include <cmath>
#include <set>

#include "mixq/error.h"
#include "pack/bitpack.h"
#include "quant/plan.h"
#include "quant/sparq_apply.h"

namespace mixq {

namespace {

// `with_data` false: the declaration only (name, dtype, dims), for sizing a file (mxq_file_size).
pack::Tensor to_plain(const std::string& name, const at::Tensor& t0, const std::string& what, bool with_data) {
  pack::Tensor t;
  t.name = name;
  t.dims.assign(t0.sizes().begin(), t0.sizes().end());
  const at::ScalarType st = t0.scalar_type();
  if (at::isFloatingType(st)) {
    t.dtype = pack::ElemType::kFloat32;
    if (!with_data) return t;
    at::Tensor c = t0.to(at::kFloat).contiguous();
    t.f.assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  } else if (at::isIntegralType(st, /*includeBool=*/true)) {
    t.dtype = pack::ElemType::kInt64;
    if (!with_data) return t;
    at::Tensor c = t0.to(at::kLong).contiguous();
    t.i.assign(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
  } else {
    throw Error(ErrorKind::kUnsupported, what + " has dtype " + std::string(c10::toString(st)) +
                                             ", which .mxq cannot store (float and integer tensors only)");
  }
  return t;
}

std::vector<float> floats_of(const at::Tensor& t) {
  at::Tensor c = t.to(at::kFloat).contiguous().reshape({-1});
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

pack::QWeight pack_weight(const QuantizedWeight& w) {
  pack::QWeight q;
  q.node = w.node;
  q.tensor = w.weight;
  q.dims.assign(w.codes.sizes().begin(), w.codes.sizes().end());
  q.bits = w.scheme.bits;
  q.symmetric = w.scheme.symmetric;
  q.granularity = pack::Gran(static_cast<uint8_t>(w.scheme.granularity));
  const int64_t rank = static_cast<int64_t>(q.dims.size());
  q.axis = w.scheme.granularity == Granularity::kPerTensor ? 0 : (w.scheme.axis < 0 ? w.scheme.axis + rank : w.scheme.axis);
  q.group_size = w.scheme.granularity == Granularity::kPerGroup ? w.scheme.group_size : 0;
  q.scales = floats_of(w.params.scale);
  std::vector<float> z = floats_of(w.params.zero_point);
  q.zero_points.resize(z.size());
  for (size_t i = 0; i < z.size(); ++i) q.zero_points[i] = static_cast<int32_t>(z[i]);
  const std::vector<float> codes = floats_of(w.codes);
  std::vector<uint16_t> u(codes.size());
  const int64_t qmin = q.qmin(), qmax = q.qmax();
  for (size_t i = 0; i < codes.size(); ++i) {
    const int64_t c = static_cast<int64_t>(codes[i]);
    MIXQ_CHECK(c >= qmin && c <= qmax && float(c) == codes[i], ErrorKind::kInvalidArgument, "weight '", w.weight,
               "' of layer '", w.node, "' has code ", codes[i], " outside [", qmin, ", ", qmax, "]");
    u[i] = static_cast<uint16_t>(c - qmin);
  }
  // Row-wise tables (form 1 / 2, .mxq 1.1): fp16-valued scale + offset, or centroids, per row.
  if (w.embed == EmbedScheme::kCodebook) {
    q.form = 2;
    q.codebook = floats_of(w.codebook);
    std::fill(q.scales.begin(), q.scales.end(), 1.0f);
  } else if (w.embed != EmbedScheme::kNone) {
    q.form = 1;
    q.offsets = floats_of(w.offset);
  }
  q.packed.resize(pack::packed_bytes(static_cast<int64_t>(u.size()), q.bits));
  pack::pack_bits(u.data(), static_cast<int64_t>(u.size()), q.bits, q.packed.data());
  return q;
}

// Everything but the quantized weights' data and the activation quantizers: inputs/outputs,
// nodes, Constant values and the initializers that stay float. `qweight_node` maps each quantized
// weight to the layer node reading it (a weight another node also reads is stored float too).
// `with_data` false declares the float tensors without copying their elements.
void pack_graph(const Graph& g, const std::map<std::string, std::string>& qweight_node, pack::PackedModel& m,
                bool with_data = true) {
  m.metadata = g.metadata;
  for (const auto* src : {&g.inputs, &g.outputs}) {
    auto& dst = src == &g.inputs ? m.inputs : m.outputs;
    for (const auto& v : *src) {
      pack::ValueDecl d;
      d.name = v.name;
      d.dtype = v.dtype == DType::kFloat ? pack::ElemType::kFloat32 : pack::ElemType::kInt64;
      d.dims = v.dims;
      dst.push_back(std::move(d));
    }
  }
  std::set<std::string> float_needed;  // quantized weights some non-layer node also reads
  for (const auto& n : g.nodes) {
    if (n.op_type == "Constant") {
      const Attribute* v = n.attr("value");
      MIXQ_CHECK(v && v->type == AttrType::kTensor && n.outputs.size() == 1, ErrorKind::kUnsupported,
                 g.describe(n), ": only Constant with a 'value' tensor can be packed");
      m.tensors.push_back(to_plain(n.outputs[0], v->t, g.describe(n), with_data));
      continue;
    }
    pack::Node p;
    p.name = n.name;
    p.op = n.op_type;
    p.inputs = n.inputs;
    p.outputs = n.outputs;
    MIXQ_CHECK(n.domain.empty() || n.domain == "ai.onnx", ErrorKind::kUnsupported, g.describe(n),
               ": operators outside the default ONNX domain cannot be packed");
    for (const auto& [k, a] : n.attrs) {
      pack::Attr pa;
      switch (a.type) {
        case AttrType::kInt: pa.type = pack::Attr::kInt; pa.i = a.i; break;
        case AttrType::kFloat: pa.type = pack::Attr::kFloat; pa.f = a.f; break;
        case AttrType::kString: pa.type = pack::Attr::kString; pa.s = a.s; break;
        case AttrType::kInts: pa.type = pack::Attr::kInts; pa.ints = a.ints; break;
        case AttrType::kFloats: pa.type = pack::Attr::kFloats; pa.floats = a.floats; break;
        case AttrType::kTensor:  // stored beside the initializers, referenced by name
          pa.type = pack::Attr::kTensor;
          pa.s = n.name + "::" + k;
          m.tensors.push_back(to_plain(pa.s, a.t, g.describe(n) + " attribute '" + k + "'", with_data));
          break;
        default:
          throw Error(ErrorKind::kUnsupported, g.describe(n) + ": attribute '" + k +
                                                   "' is a tensor/graph/string list, which .mxq cannot store");
      }
      p.attrs[k] = std::move(pa);
    }
    for (const auto& in : n.inputs) {
      auto it = qweight_node.find(in);
      if (it != qweight_node.end() && it->second != n.name) float_needed.insert(in);
    }
    m.nodes.push_back(std::move(p));
  }
  for (const auto& [name, t] : g.initializers)
    if (!qweight_node.count(name) || float_needed.count(name))
      m.tensors.push_back(to_plain(name, t, "initializer '" + name + "'", with_data));
}

// A plan's pack before calibration, declarations only (sized by mxq_file_size, no data copied):
// every planned weight declared at its scheme, every quantized input with a made-up quantizer.
// Only values differ from the real pack, and the data section stores them raw (fixed width), so
// the sizes differ only by how well zlib compresses the activation quantizers in the graph
// section: their scales get full 23-bit mantissas, like calibrated ones, so that difference stays
// within a few dozen bytes.
pack::PackedModel skeleton_pack(const Graph& g, const QuantPlan& plan, bool quantized) {
  pack::PackedModel m;
  uint32_t state = 2463534242u;  // xorshift32: deterministic, so a plan's predicted size is too
  auto next = [&state] {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return state;
  };
  std::map<std::string, std::string> qweight_node;
  if (quantized) {
    std::set<std::string> acts;
    for (const auto& L : plan.layers) {
      pack::QWeight q;
      q.node = L.name;
      q.tensor = L.weight;
      q.dims = L.weight_shape;
      q.bits = L.weight_scheme.bits;
      q.symmetric = L.weight_scheme.symmetric;
      q.granularity = pack::Gran(static_cast<uint8_t>(L.weight_scheme.granularity));
      const int64_t rank = static_cast<int64_t>(q.dims.size()), ax = L.weight_scheme.axis;
      q.axis = q.granularity == pack::Gran::kPerTensor ? 0 : (ax < 0 ? ax + rank : ax);
      q.group_size = q.granularity == pack::Gran::kPerGroup ? L.weight_scheme.group_size : 0;
      qweight_node[q.tensor] = q.node;
      m.weights.push_back(std::move(q));
      if (L.quantize_input && acts.insert(L.input).second) {
        pack::QAct a;
        a.tensor = L.input;
        a.bits = L.input_scheme.bits;
        a.symmetric = L.input_scheme.symmetric;
        a.scale = std::ldexp(1.0f + float(next() & 0x7fffff) / float(1 << 23), -6);
        a.zero_point = float(a.qmin() + int64_t(next() % uint32_t(a.qmax() - a.qmin() + 1)));
        m.acts.push_back(a);
      }
    }
  }
  pack_graph(g, qweight_node, m, /*with_data=*/false);
  return m;
}

int64_t file_bytes(const pack::PackedModel& m) { return static_cast<int64_t>(pack::mxq_file_size(m)); }

}  // namespace

pack::PackedModel pack_quantized_model(const QuantizedModel& qm) {
  check_no_sparq(qm, "the packed .mxq format");  // the runtime has no SPARQ kernels (docs/sparq.md)
  // The runtime quantizes a value for the quantized layers reading it and keeps float for the
  // others (runtime/tensor.h), which is ActPlacement::kInputs; packing another placement would
  // run a different model than the one simulated and evaluated.
  for (const auto& qa : qm.activations)
    MIXQ_CHECK(!qa.all_readers, ErrorKind::kUnsupported, "activation '", qa.tensor, "' is quantized for every ",
               "reader (act_placement outputs), but the packed runtime keeps residual paths float; quantize with ",
               "--act-placement inputs to pack, or export QDQ ONNX (-o)");
  const Graph& g = qm.graph;
  pack::PackedModel m;
  std::map<std::string, std::string> qweight_node;
  std::vector<std::pair<const QuantizedWeight*, MultipointLayout>> multipoint;
  for (const auto& w : qm.weights) {
    MIXQ_CHECK(g.is_initializer(w.weight), ErrorKind::kInvalidArgument, "quantized weight '", w.weight,
               "' is not an initializer of ", g.source_path);
    qweight_node[w.weight] = w.node;
    if (w.extra.empty()) {
      m.weights.push_back(pack_weight(w));
      continue;
    }
    int64_t groups = 1;
    for (const auto& n : g.nodes)
      if (n.name == w.node && n.op_type == "Conv" && n.attr("group")) groups = n.attr("group")->i;
    multipoint.push_back({&w, multipoint_layout(w, groups)});
    m.weights.push_back(pack_weight(multipoint.back().second.weight));
  }
  pack_graph(g, qweight_node, m);
  for (const auto& [w, lay] : multipoint) rewrite_multipoint_node(*w, lay, g, m);
  for (const auto& a : qm.activations) {
    pack::QAct q;
    q.tensor = a.tensor;
    q.bits = a.scheme.bits;
    q.symmetric = a.scheme.symmetric;
    q.scale = a.params.scale.to(at::kFloat).reshape({-1})[0].item<float>();
    q.zero_point = a.params.zero_point.to(at::kFloat).reshape({-1})[0].item<float>();
    m.acts.push_back(q);
  }
  return m;
}

void count_file_structure(const Graph& g, QuantPlan& plan) {
  // The structure does not depend on the weight schemes (a table's form is one declaration byte
  // either way): measured with every table on the affine scheme the skeleton writes; row-wise
  // tables' data is counted by layer_size_bits.
  QuantPlan affine = plan;
  for (auto& L : affine.layers) L.embed = EmbedScheme::kNone;
  affine.structure_bytes = affine.float_structure_bytes = 0;
  update_cost(affine);
  const PlanCost counted = affine.cost;  // what the per-layer cost model and other_bytes cover
  plan.structure_bytes = file_bytes(skeleton_pack(g, affine, true)) - counted.size_bytes;
  plan.float_structure_bytes = file_bytes(skeleton_pack(g, affine, false)) - counted.float_bytes;
  update_cost(plan);
}

}  // namespace mixq
