// .mxq format core: bit packing round trips at every width, write/read round trip, and a reader
// that rejects truncated, corrupted and inconsistent files with kInvalidModel (never a crash).
#include <zlib.h>

#include <random>

#include "pack/bitpack.h"
#include "pack/mxq_format.h"
#include "test_util.h"

namespace mixq::test {
namespace {

TEST(BitPack, RoundTripEveryWidthOddSizes) {
  std::mt19937 rng(1);
  for (int bits = 1; bits <= 16; ++bits)
    for (int64_t n : {0, 1, 3, 7, 8, 13, 31, 257, 1001}) {
      std::vector<uint16_t> c(n), back(n);
      for (auto& v : c) v = static_cast<uint16_t>(rng() & ((1u << bits) - 1));
      if (n > 0) c[0] = static_cast<uint16_t>((1u << bits) - 1);  // the largest code survives
      std::vector<uint8_t> p(pack::packed_bytes(n, bits), 0xAB);
      pack::pack_bits(c.data(), n, bits, p.data());
      pack::unpack_bits(p.data(), n, bits, back.data());
      ASSERT_EQ(c, back) << bits << " bits, n=" << n;
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(pack::unpack_one(p.data(), i, bits), c[i]) << bits << " " << i;
      if (bits <= 8) {  // the byte-wide fast path reads exactly the packed bytes
        std::vector<uint8_t> exact(p.begin(), p.end()), u(static_cast<size_t>(n));
        pack::unpack_bits_u8(exact.data(), n, bits, u.data());
        ASSERT_TRUE(std::equal(u.begin(), u.end(), c.begin())) << bits << " bits, n=" << n << " (unpack_bits_u8)";
      }
      if (n * bits % 8) {  // padding bits of the last byte are zero (files are deterministic)
        const int used = static_cast<int>(n * bits % 8);
        EXPECT_EQ(p.back() >> used, 0) << bits << " bits, n=" << n;
      }
    }
}

TEST(BitPack, KnownLayout) {
  // LSB first: codes 1,2,3 at 3 bits -> bits 001 010 011 -> byte0 = 0b11010001, byte1 = 0b0.
  const uint16_t c[3] = {1, 2, 3};
  uint8_t p[2];
  pack::pack_bits(c, 3, 3, p);
  EXPECT_EQ(p[0], 0xD1);
  EXPECT_EQ(p[1], 0x00);
}

pack::PackedModel tiny_model() {
  pack::PackedModel m;
  m.metadata["mixq.input_mean"] = "0.5";
  m.inputs.push_back({"x", pack::ElemType::kFloat32, {-1, 5}});
  m.outputs.push_back({"y", pack::ElemType::kFloat32, {-1, 3}});
  pack::Node n;
  n.name = "fc";
  n.op = "Gemm";
  n.inputs = {"x", "w", "b"};
  n.outputs = {"y"};
  n.attrs["transB"].type = pack::Attr::kInt;
  n.attrs["transB"].i = 1;
  n.attrs["alpha"].type = pack::Attr::kFloat;
  n.attrs["alpha"].f = 1.0f;
  m.nodes.push_back(n);
  pack::Tensor b;
  b.name = "b";
  b.dims = {3};
  b.f = {0.5f, -1.0f, 2.0f};
  m.tensors.push_back(b);
  pack::Tensor s;
  s.name = "shape";
  s.dtype = pack::ElemType::kInt64;
  s.dims = {2};
  s.i = {-1, 7};
  m.tensors.push_back(s);
  pack::QWeight w;
  w.node = "fc";
  w.tensor = "w";
  w.dims = {3, 5};
  w.bits = 3;
  w.granularity = pack::Gran::kPerChannel;
  w.scales = {0.1f, 0.2f, 0.3f};
  w.zero_points = {0, 3, 7};
  std::vector<uint16_t> u(15);
  for (int i = 0; i < 15; ++i) u[i] = static_cast<uint16_t>(i % 8);
  w.packed.resize(pack::packed_bytes(15, 3));
  pack::pack_bits(u.data(), 15, 3, w.packed.data());
  m.weights.push_back(w);
  m.acts.push_back({"x", 8, false, 0.05f, 128.0f});
  return m;
}

TEST(MxqFormat, RoundTrip) {
  const pack::PackedModel m = tiny_model();
  const std::string bytes = pack::write_mxq(m);
  const pack::PackedModel r = pack::read_mxq(bytes, "t.mxq");
  EXPECT_EQ(r.metadata, m.metadata);
  ASSERT_EQ(r.nodes.size(), 1u);
  EXPECT_EQ(r.nodes[0].inputs, m.nodes[0].inputs);
  EXPECT_EQ(r.nodes[0].attr("transB")->i, 1);
  EXPECT_EQ(r.inputs[0].dims, m.inputs[0].dims);
  ASSERT_EQ(r.tensors.size(), 2u);
  EXPECT_EQ(r.tensors[0].f, m.tensors[0].f);
  EXPECT_EQ(r.tensors[1].i, m.tensors[1].i);
  ASSERT_EQ(r.weights.size(), 1u);
  EXPECT_EQ(r.weights[0].packed, m.weights[0].packed);
  EXPECT_EQ(r.weights[0].zero_points, m.weights[0].zero_points);
  EXPECT_EQ(r.weights[0].scales, m.weights[0].scales);
  EXPECT_EQ(r.weights[0].codes(), m.weights[0].codes());
  // dequantize: s * (q - z), per channel
  const auto d = r.weights[0].dequantize();
  EXPECT_FLOAT_EQ(d[5 + 1], 0.2f * (6 - 3));
  EXPECT_EQ(r.acts[0].zero_point, 128.0f);
  EXPECT_EQ(pack::write_mxq(r), bytes);  // deterministic
}

// The file size from the declarations alone (what a plan's size prediction uses): equal to the
// written file's, with or without the data, for affine weights (symmetric or not, 16-bit zero
// points) and both row-wise table forms.
TEST(MxqFormat, FileSizeFromDeclarationsAlone) {
  pack::PackedModel m = tiny_model();
  pack::QWeight sym = m.weights[0];
  sym.tensor = "w_sym";
  sym.symmetric = true;
  sym.zero_points = {0, 0, 0};
  m.weights.push_back(sym);
  pack::QWeight wide = m.weights[0];
  wide.tensor = "w16";
  wide.bits = 16;
  std::vector<uint16_t> u16(15, 40000);
  wide.packed.assign(pack::packed_bytes(15, 16), 0);
  pack::pack_bits(u16.data(), 15, 16, wide.packed.data());
  m.weights.push_back(wide);
  for (uint8_t form : {1, 2}) {
    pack::QWeight t;
    t.node = "emb" + std::to_string(form);
    t.tensor = t.node + "_w";
    t.dims = {4, 6};
    t.bits = 2;
    t.granularity = pack::Gran::kPerChannel;
    t.form = form;
    t.scales.assign(4, form == 1 ? 0.5f : 1.0f);
    t.zero_points.assign(4, 0);
    if (form == 1) t.offsets.assign(4, -1.0f);
    else t.codebook.assign(4 * 4, 0.25f);
    t.packed.assign(pack::packed_bytes(24, 2), 0x1B);
    m.weights.push_back(t);
  }
  const uint64_t written = pack::write_mxq(m).size();
  EXPECT_EQ(pack::mxq_file_size(m), written);
  for (auto& t : m.tensors) { t.f.clear(); t.i.clear(); }
  for (auto& q : m.weights) { q.packed.clear(); q.scales.clear(); q.zero_points.clear(); q.offsets.clear(); q.codebook.clear(); }
  EXPECT_EQ(pack::mxq_file_size(m), written);
}

void expect_invalid(const std::string& bytes, const std::string& needle) {
  try {
    pack::read_mxq(bytes, "bad.mxq");
    FAIL() << "accepted a bad file (expected '" << needle << "')";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidModel) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad.mxq"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// Fixes the header's size and CRC after an edit, so the checks behind the CRC are reached.
std::string reseal(std::string b) {
  const uint64_t size = b.size();
  for (int i = 0; i < 8; ++i) b[16 + i] = static_cast<char>(size >> (8 * i));
  const uint32_t crc = static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(b.data() + 40), b.size() - 40));
  for (int i = 0; i < 4; ++i) b[24 + i] = static_cast<char>(crc >> (8 * i));
  return b;
}

TEST(MxqFormat, RejectsTruncationAtEveryLength) {
  const std::string bytes = pack::write_mxq(tiny_model());
  for (size_t n = 0; n < bytes.size(); ++n) {
    SCOPED_TRACE(n);
    EXPECT_THROW(pack::read_mxq(bytes.substr(0, n), "bad.mxq"), Error);
    // Truncated and resealed (size + CRC consistent): the section readers must catch it.
    if (n >= 40) {
      EXPECT_THROW(pack::read_mxq(reseal(bytes.substr(0, n)), "bad.mxq"), Error);
    }
  }
  expect_invalid(bytes.substr(0, bytes.size() - 1), "truncated");
}

TEST(MxqFormat, RejectsCorruptionEverywhere) {
  const std::string bytes = pack::write_mxq(tiny_model());
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i == 10 || i == 11) continue;  // the minor version: readers accept newer minors by design
    std::string b = bytes;
    b[i] = static_cast<char>(b[i] ^ 0x5A);
    EXPECT_THROW(pack::read_mxq(b, "bad.mxq"), Error) << "byte " << i;
  }
  std::string b = bytes;
  b[bytes.size() - 2] ^= 1;
  expect_invalid(b, "checksum mismatch");
  b = bytes;
  b[0] = 'X';
  expect_invalid(b, "not a .mxq file");
  b = bytes;
  b[8] = 9;  // major version 9
  expect_invalid(b, "version 9");
  b = bytes;
  std::swap(b[12], b[15]);
  std::swap(b[13], b[14]);
  expect_invalid(b, "big-endian");
}

TEST(MxqFormat, RejectsInconsistentDeclarations) {
  // Flip bytes of the data section but keep the CRC valid: the semantic checks must catch what
  // the CRC cannot (a writer bug, a hand-made file).
  pack::PackedModel m = tiny_model();
  m.weights[0].scales[1] = -1.0f;
  EXPECT_THROW(pack::write_mxq(m), Error);  // the writer refuses too
  const std::string good = pack::write_mxq(tiny_model());
  // Zero points live right after the 3 scales of the weight; set one to 200 (> qmax 7 at 3 bits).
  const size_t codes = pack::packed_bytes(15, 3), zp_at = good.size() - codes - 3;
  std::string b = good;
  b[zp_at + 1] = static_cast<char>(200);
  expect_invalid(reseal(b), "zero point");
  // A scale of NaN.
  b = good;
  const size_t scale_at = zp_at - 12;
  for (int i = 0; i < 4; ++i) b[scale_at + i] = static_cast<char>(0xFF);
  expect_invalid(reseal(b), "scale");
  // Appended bytes.
  expect_invalid(reseal(good + "xx"), "after the last weight");
}

TEST(MxqFormat, LoadErrors) {
  TempDir d;
  try {
    pack::load_mxq(d.file("missing.mxq"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kIO);
  }
  write_file(d.file("empty.mxq"), "");
  EXPECT_THROW(pack::load_mxq(d.file("empty.mxq")), Error);
}

}  // namespace
}  // namespace mixq::test
