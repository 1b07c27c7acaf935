// ONNX import: initializers of every dtype (raw and typed fields), external data, metadata,
// node naming, and structural checks.
#include <ATen/ATen.h>
#include <onnx/onnx_pb.h>

#include "onnx/import.h"
#include "test_util.h"

namespace mixq::test {
namespace {

// A model whose graph is just Identity(init) -> out, holding initializer `tp`.
onnx::ModelProto model_with(const onnx::TensorProto& tp) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  auto* op = m.add_opset_import();
  op->set_version(13);
  auto* g = m.mutable_graph();
  g->set_name("g");
  *g->add_initializer() = tp;
  auto* n = g->add_node();
  n->set_op_type("Identity");
  n->add_input(tp.name());
  n->add_output("out");
  auto* out = g->add_output();
  out->set_name("out");
  auto* tt = out->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(tp.data_type());
  for (auto d : tp.dims()) tt->mutable_shape()->add_dim()->set_dim_value(d);
  auto* kv = m.add_metadata_props();
  kv->set_key("mixq.input_mean");
  kv->set_value("0.1");
  return m;
}

Graph load(const onnx::ModelProto& m, const std::string& dir = "") {
  return load_onnx_bytes(m.SerializeAsString(), "mem.onnx", dir);
}

TEST(Import, RawDataOfEveryDtype) {
  struct Case { int onnx_type; at::ScalarType st; };
  const Case cases[] = {
      {onnx::TensorProto::FLOAT, at::kFloat},   {onnx::TensorProto::DOUBLE, at::kDouble},
      {onnx::TensorProto::FLOAT16, at::kHalf},  {onnx::TensorProto::BFLOAT16, at::kBFloat16},
      {onnx::TensorProto::INT8, at::kChar},     {onnx::TensorProto::UINT8, at::kByte},
      {onnx::TensorProto::INT16, at::kShort},   {onnx::TensorProto::INT32, at::kInt},
      {onnx::TensorProto::INT64, at::kLong},    {onnx::TensorProto::BOOL, at::kBool}};
  for (const auto& c : cases) {
    at::Tensor t = (at::arange(6) % 2).reshape({2, 3}).to(c.st);
    onnx::TensorProto tp;
    tp.set_name("w");
    tp.set_data_type(c.onnx_type);
    tp.add_dims(2);
    tp.add_dims(3);
    tp.set_raw_data(std::string(static_cast<const char*>(t.data_ptr()), t.nbytes()));
    Graph g = load(model_with(tp));
    EXPECT_TRUE(at::equal(g.initializers.at("w"), t)) << c.onnx_type;
  }
}

TEST(Import, WidensUnsignedTypes) {
  onnx::TensorProto tp;
  tp.set_name("w");
  tp.set_data_type(onnx::TensorProto::UINT16);
  tp.add_dims(2);
  uint16_t v[2] = {65535, 7};
  tp.set_raw_data(std::string(reinterpret_cast<const char*>(v), 4));
  at::Tensor t = load(model_with(tp)).initializers.at("w");
  EXPECT_EQ(t.scalar_type(), at::kInt);
  EXPECT_EQ(t[0].item<int64_t>(), 65535);
  onnx::TensorProto u32;
  u32.set_name("w");
  u32.set_data_type(onnx::TensorProto::UINT32);
  u32.add_dims(1);
  u32.add_uint64_data(4000000000ULL);
  at::Tensor t2 = load(model_with(u32)).initializers.at("w");
  EXPECT_EQ(t2.scalar_type(), at::kLong);
  EXPECT_EQ(t2[0].item<int64_t>(), 4000000000LL);
}

TEST(Import, TypedFieldsAndCountChecks) {
  onnx::TensorProto tp;
  tp.set_name("w");
  tp.set_data_type(onnx::TensorProto::INT64);
  tp.add_dims(3);
  for (int64_t v : {-1, 0, 5}) tp.add_int64_data(v);
  EXPECT_TRUE(at::equal(load(model_with(tp)).initializers.at("w"), at::tensor({-1L, 0L, 5L})));
  tp.add_int64_data(9);  // 4 values for 3 elements
  EXPECT_THROW(load(model_with(tp)), Error);
  onnx::TensorProto raw;
  raw.set_name("w");
  raw.set_data_type(onnx::TensorProto::FLOAT);
  raw.add_dims(4);
  raw.set_raw_data(std::string(12, '\0'));  // 12 bytes for 16
  try {
    load(model_with(raw));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("initializer 'w'"), std::string::npos) << e.what();
  }
}

TEST(Import, ExternalData) {
  TempDir dir;
  at::Tensor w = at::arange(8, at::kFloat);
  write_file(dir.file("weights.bin"), std::string(16, 'x') + std::string(static_cast<const char*>(w.data_ptr()), 32));
  onnx::TensorProto tp;
  tp.set_name("w");
  tp.set_data_type(onnx::TensorProto::FLOAT);
  tp.add_dims(8);
  tp.set_data_location(onnx::TensorProto::EXTERNAL);
  auto add = [&](const char* k, const char* v) {
    auto* kv = tp.add_external_data();
    kv->set_key(k);
    kv->set_value(v);
  };
  add("location", "weights.bin");
  add("offset", "16");
  add("length", "32");
  auto m = model_with(tp);
  write_file(dir.file("m.onnx"), m.SerializeAsString());
  Graph g = load_onnx(dir.file("m.onnx"));
  EXPECT_TRUE(at::equal(g.initializers.at("w"), w));
  // Paths escaping the model directory are refused.
  tp.mutable_external_data(0)->set_value("../weights.bin");
  write_file(dir.file("m2.onnx"), model_with(tp).SerializeAsString());
  EXPECT_THROW(load_onnx(dir.file("m2.onnx")), Error);
}

TEST(Import, MetadataOpsetsAndNodeNames) {
  onnx::TensorProto tp;
  tp.set_name("w");
  tp.set_data_type(onnx::TensorProto::FLOAT);
  tp.add_dims(1);
  tp.add_float_data(1.0f);
  Graph g = load(model_with(tp));
  EXPECT_EQ(g.opset(), 13);
  EXPECT_EQ(g.metadata.at("mixq.input_mean"), "0.1");
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].name, "Identity_0");  // unnamed nodes get "<op>_<index>"
  EXPECT_TRUE(g.inputs.empty());             // initializers are not user inputs
}

TEST(Import, RejectsOutOfOrderNodes) {
  onnx::TensorProto tp;
  tp.set_name("w");
  tp.set_data_type(onnx::TensorProto::FLOAT);
  tp.add_dims(1);
  tp.add_float_data(1.0f);
  auto m = model_with(tp);
  auto* g = m.mutable_graph();
  g->mutable_node(0)->set_output(0, "mid");
  auto* n2 = g->add_node();
  n2->set_op_type("Identity");
  n2->set_name("second");
  n2->add_input("mid");
  n2->add_output("out");
  g->mutable_node()->SwapElements(0, 1);
  try {
    load(m);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("topological"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("node 'second'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mixq::test
