// Graph -> ONNX ModelProto (the only protobuf writer). The QDQ graph construction, which needs no
// protobuf, is in export_qdq.cpp.
#include "onnx/export.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <set>

#include "core/atomic_file.h"
#include "mixq/error.h"
#include "onnx/tensor_proto.h"

namespace mixq {

namespace {

void value_info_to_proto(const ValueInfo& vi, onnx::ValueInfoProto* out) {
  out->set_name(vi.name);
  auto* tt = out->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(static_cast<int32_t>(vi.dtype));
  if (!vi.has_shape) return;
  auto* shape = tt->mutable_shape();
  for (size_t i = 0; i < vi.dims.size(); ++i) {
    auto* d = shape->add_dim();
    if (vi.dims[i] >= 0)
      d->set_dim_value(vi.dims[i]);
    else if (i < vi.dim_names.size() && !vi.dim_names[i].empty())
      d->set_dim_param(vi.dim_names[i]);
    // else: an unknown, unnamed dimension (neither field set)
  }
}

void attribute_to_proto(const Graph& g, const Node& n, const std::string& key, const Attribute& a,
                        onnx::AttributeProto* out) {
  out->set_name(key);
  switch (a.type) {
    case AttrType::kFloat:
      out->set_type(onnx::AttributeProto::FLOAT);
      out->set_f(a.f);
      break;
    case AttrType::kInt:
      out->set_type(onnx::AttributeProto::INT);
      out->set_i(a.i);
      break;
    case AttrType::kString:
      out->set_type(onnx::AttributeProto::STRING);
      out->set_s(a.s);
      break;
    case AttrType::kTensor:
      out->set_type(onnx::AttributeProto::TENSOR);
      *out->mutable_t() = tensor_to_proto(a.t, "");
      break;
    case AttrType::kFloats:
      out->set_type(onnx::AttributeProto::FLOATS);
      for (float v : a.floats) out->add_floats(v);
      break;
    case AttrType::kInts:
      out->set_type(onnx::AttributeProto::INTS);
      for (int64_t v : a.ints) out->add_ints(v);
      break;
    case AttrType::kStrings:
      out->set_type(onnx::AttributeProto::STRINGS);
      for (const auto& v : a.strings) out->add_strings(v);
      break;
    case AttrType::kGraph:
    case AttrType::kOther:
      throw Error(
          ErrorKind::kUnsupported,
          detail::concat(g.describe(n), " attribute '", key, "' is a ",
                         a.type == AttrType::kGraph ? "graph" : "sparse tensor / type proto",
                         ", which mixq's IR does not keep: the model cannot be exported"));
  }
}

onnx::ModelProto graph_to_model_proto(const Graph& g) {
  MIXQ_CHECK(!g.opsets.empty(), ErrorKind::kInvalidArgument, "graph '", g.name,
             "' has no opset imports: set opsets[\"\"] before exporting");
  onnx::ModelProto m;
  // At least IR 7 (opset 13's QuantizeLinear axis); 8 for opset >= 15; never more than the
  // libonnx checker knows.
  int64_t ir = std::max<int64_t>(g.ir_version, 7);
  if (g.opset() >= 15) ir = std::max<int64_t>(ir, 8);
  ir = std::min<int64_t>(ir, onnx::IR_VERSION);
  m.set_ir_version(ir);
  m.set_producer_name("mixq");
  for (const auto& kv : g.opsets) {
    auto* op = m.add_opset_import();
    op->set_domain(kv.first);
    op->set_version(kv.second);
  }
  for (const auto& kv : g.metadata) {
    auto* p = m.add_metadata_props();
    p->set_key(kv.first);
    p->set_value(kv.second);
  }

  auto* gp = m.mutable_graph();
  gp->set_name(g.name.empty() ? "mixq" : g.name);
  for (const auto& vi : g.inputs) value_info_to_proto(vi, gp->add_input());
  for (const auto& vi : g.outputs) value_info_to_proto(vi, gp->add_output());
  // value_info only for values nodes still produce (passes drop and rename values) and whose
  // type is known; graph outputs already carry theirs.
  std::set<std::string> produced, outputs;
  for (const auto& n : g.nodes)
    for (const auto& o : n.outputs)
      if (!o.empty()) produced.insert(o);
  for (const auto& vi : g.outputs) outputs.insert(vi.name);
  for (const auto& kv : g.value_info)
    if (produced.count(kv.first) && !outputs.count(kv.first) &&
        kv.second.dtype != DType::kUndefined)
      value_info_to_proto(kv.second, gp->add_value_info());
  for (const auto& kv : g.initializers)
    *gp->add_initializer() = tensor_to_proto(kv.second, kv.first);
  for (const auto& n : g.nodes) {
    auto* np = gp->add_node();
    np->set_name(n.name);
    np->set_op_type(n.op_type);
    if (!n.domain.empty()) np->set_domain(n.domain);
    for (const auto& in : n.inputs) np->add_input(in);
    for (const auto& out : n.outputs) np->add_output(out);
    for (const auto& kv : n.attrs)
      attribute_to_proto(g, n, kv.first, kv.second, np->add_attribute());
  }
  return m;
}

std::string serialize(const onnx::ModelProto& m, const std::string& what) {
  MIXQ_CHECK(m.ByteSizeLong() < (size_t(2) << 30), ErrorKind::kUnsupported, what,
             ": the model would be over 2 GiB, the protobuf limit (external data is not written "
             "by mixq yet)");
  std::string bytes;
  MIXQ_CHECK(m.SerializeToString(&bytes), ErrorKind::kInternal, what,
             ": protobuf serialization failed");
  return bytes;
}

}  // namespace

std::string graph_to_onnx_bytes(const Graph& g) {
  return serialize(graph_to_model_proto(g), g.name.empty() ? "graph" : "graph '" + g.name + "'");
}

void save_onnx(const Graph& g, const std::string& path) {
  onnx::ModelProto m = graph_to_model_proto(g);
  try {
    onnx::checker::check_model(m);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    auto cut = msg.find("\n\n==> Context:");
    std::string ctx = cut == std::string::npos ? "" : msg.substr(cut + 14);
    if (cut != std::string::npos) msg = msg.substr(0, cut);
    throw Error(ErrorKind::kInternal,
                detail::concat("internal error (a bug in mixq, please report it): the model "
                               "written to '",
                               path, "' would fail the ONNX checker: ", msg,
                               ctx.empty() ? "" : " [" + ctx.substr(0, ctx.find('\n')) + "]"));
  }
  write_file_atomic(path, serialize(m, "'" + path + "'"));
}



}  // namespace mixq
