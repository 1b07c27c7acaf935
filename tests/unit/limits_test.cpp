// Sizes are checked before allocation (issue 21, item 4; docs/reliability.md): tiny crafted files
// that declare huge tensors are errors naming the file / tensor, never an allocation of what they
// claim (which would be an out-of-memory kill, or a bad_alloc with no context).
#include <onnx/onnx_pb.h>
#include <zlib.h>

#include <cstdint>
#include <string>

#include "data/npy.h"
#include "onnx/import.h"
#include "onnx/tensor_proto.h"
#include "pack/mxq_format.h"
#include "test_util.h"

namespace mixq::test {
namespace {

constexpr int64_t kHuge = 10'000'000'000;  // 10 G elements: 40 GB of float32

// Runs `f`, expects a mixq::Error whose message contains every one of `parts`.
template <typename F>
void expect_error(F&& f, std::initializer_list<const char*> parts) {
  try {
    f();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    for (const char* p : parts) EXPECT_NE(m.find(p), std::string::npos) << "'" << p << "' not in: " << m;
  }
}

void put_u16(std::string& s, uint16_t v) { s += char(v & 0xff), s += char(v >> 8); }
void put_u32(std::string& s, uint32_t v) { put_u16(s, uint16_t(v & 0xffff)), put_u16(s, uint16_t(v >> 16)); }

TEST(Limits, NpyDeclaringAHugeShapeIsAnError) {
  TempDir d;
  const float x[10] = {};
  write_npy(d.file("big.npy"), "<f4", {kHuge}, x, sizeof x);  // 40 data bytes
  expect_error([&] { load_npy(d.file("big.npy")); }, {"big.npy", "40 data bytes", "needs 40000000000"});
  // Beyond any plausible size (overflowing int64 byte counts): refused by the shape check itself.
  write_npy(d.file("absurd.npy"), "<f4", {kHuge, kHuge}, x, sizeof x);
  expect_error([&] { load_npy(d.file("absurd.npy")); }, {"absurd.npy", "too large shape"});
}

// A zip archive by hand: one deflated entry whose directory claims ~4 GB from 40 stored bytes.
std::string crafted_npz(uint16_t method, uint32_t comp_size, uint32_t size) {
  const std::string name = "x.npy", data(comp_size, '\0');
  std::string z;
  put_u32(z, 0x04034b50);
  put_u16(z, 20), put_u16(z, 0), put_u16(z, method), put_u16(z, 0), put_u16(z, 0);
  put_u32(z, 0), put_u32(z, comp_size), put_u32(z, size);
  put_u16(z, uint16_t(name.size())), put_u16(z, 0);
  z += name + data;
  const uint32_t cd_offset = uint32_t(z.size());
  put_u32(z, 0x02014b50);
  put_u16(z, 20), put_u16(z, 20), put_u16(z, 0), put_u16(z, method), put_u16(z, 0), put_u16(z, 0);
  put_u32(z, 0), put_u32(z, comp_size), put_u32(z, size);
  put_u16(z, uint16_t(name.size())), put_u16(z, 0), put_u16(z, 0), put_u16(z, 0), put_u16(z, 0);
  put_u32(z, 0), put_u32(z, 0);
  z += name;
  const uint32_t cd_size = uint32_t(z.size()) - cd_offset;
  put_u32(z, 0x06054b50);
  put_u16(z, 0), put_u16(z, 0), put_u16(z, 1), put_u16(z, 1);
  put_u32(z, cd_size), put_u32(z, cd_offset), put_u16(z, 0);
  return z;
}

TEST(Limits, NpzEntryDeclaringMoreThanItsArchiveHoldsIsAnError) {
  TempDir d;
  write_file(d.file("deflated.npz"), crafted_npz(8, 40, 0xFFFFFF00u));
  expect_error([&] { load_npz(d.file("deflated.npz")); }, {"deflated.npz", "x.npy", "declares"});
  write_file(d.file("stored.npz"), crafted_npz(0, 40, 0xFFFFFF00u));
  expect_error([&] { load_npz(d.file("stored.npz")); }, {"stored.npz", "x.npy", "declares"});
}

onnx::TensorProto huge_proto(const std::string& name) {
  onnx::TensorProto tp;
  tp.set_name(name);
  tp.set_data_type(onnx::TensorProto_DataType_FLOAT);
  tp.add_dims(kHuge);
  return tp;
}

TEST(Limits, TensorProtoDeclaringAHugeShapeIsAnError) {
  TempDir d;
  onnx::TensorProto raw = huge_proto("w");
  raw.set_raw_data(std::string(40, '\0'));
  write_file(d.file("raw.pb"), raw.SerializeAsString());
  expect_error([&] { load_tensor_pb(d.file("raw.pb")); }, {"raw.pb", "raw_data holds 40 bytes"});
  onnx::TensorProto typed = huge_proto("w");
  for (int i = 0; i < 10; ++i) typed.add_float_data(1.0f);
  write_file(d.file("typed.pb"), typed.SerializeAsString());
  expect_error([&] { load_tensor_pb(d.file("typed.pb")); }, {"typed.pb", "holds 10 values"});
  // 4 TB: allocating first (as this reader once did) fails inside the allocator, not with this error.
  onnx::TensorProto tera = raw;
  tera.set_dims(0, 1'000'000'000'000);
  write_file(d.file("tera.pb"), tera.SerializeAsString());
  expect_error([&] { load_tensor_pb(d.file("tera.pb")); }, {"tera.pb", "raw_data holds 40 bytes"});
}

TEST(Limits, OnnxInitializerWithHugeExternalDataIsAnError) {
  TempDir d;
  write_file(d.file("w.bin"), std::string(40, '\0'));
  onnx::TensorProto tp = huge_proto("big_weight");
  tp.set_data_location(onnx::TensorProto_DataLocation_EXTERNAL);
  auto* kv = tp.add_external_data();
  kv->set_key("location");
  kv->set_value("w.bin");
  expect_error([&] { tensor_from_proto(tp, d.path(), "initializer 'big_weight'"); },
               {"big_weight", "w.bin", "40 bytes"});
  // In a whole model too: the importer names the initializer.
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  auto* g = m.mutable_graph();
  g->set_name("g");
  *g->add_initializer() = tp;
  auto* in = g->add_input();
  in->set_name("x");
  in->mutable_type()->mutable_tensor_type()->set_elem_type(1);
  in->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(1);
  auto* n = g->add_node();
  n->set_op_type("Add");
  n->add_input("x");
  n->add_input("big_weight");
  n->add_output("y");
  auto* out = g->add_output();
  out->set_name("y");
  out->mutable_type()->mutable_tensor_type()->set_elem_type(1);
  write_file(d.file("m.onnx"), m.SerializeAsString());
  expect_error([&] { load_onnx(d.file("m.onnx")); }, {"big_weight"});
}

TEST(Limits, MxqGraphSectionDeclaringAHugeSizeIsAnError) {
  std::string bytes = pack::write_mxq(pack::PackedModel{});
  ASSERT_GE(bytes.size(), pack::kHeaderBytes);
  // The header's inflated graph size (offset 28; the checksum covers only what follows the header).
  std::string b = bytes;
  const uint32_t huge = 1u << 30;
  for (int i = 0; i < 4; ++i) b[28 + i] = char((huge >> (8 * i)) & 0xff);
  expect_error([&] { pack::read_mxq(b, "crafted.mxq"); }, {"crafted.mxq", "more than deflate can expand"});
}

TEST(Limits, DeclaredSizesWithinTheFileStillLoad) {
  TempDir d;
  const float x[6] = {1, 2, 3, 4, 5, 6};
  write_npy(d.file("ok.npy"), "<f4", {2, 3}, x, sizeof x);
  EXPECT_EQ(load_npy(d.file("ok.npy")).numel(), 6);
  onnx::TensorProto tp;
  tp.set_data_type(onnx::TensorProto_DataType_FLOAT);
  tp.add_dims(2);
  tp.add_float_data(1), tp.add_float_data(2);
  EXPECT_EQ(tensor_from_proto(tp, "", "t").numel(), 2);
}

}  // namespace
}  // namespace mixq::test
