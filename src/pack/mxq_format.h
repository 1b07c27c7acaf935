// The .mxq packed model format: a quantized model stored at its real bit-widths, read by the
// libtorch-free runtime (src/runtime). This header and mxq_format.cpp are the format core and use
// no libtorch; src/pack/from_qmodel.cpp (libtorch) fills a PackedModel from a QuantizedModel.
//
// File layout (all integers little-endian; version 1):
//   header, 40 bytes:
//     magic "MIXQPACK" (8) | u16 version major (1) | u16 minor (0) | u32 endian marker 0x0A0B0C0D
//     (a big-endian writer would give 0D 0C 0B 0A: rejected with a clear message) | u64 file size |
//     u32 CRC-32 (zlib) of every byte after the header | u32 graph section raw size |
//     u32 graph section stored size | u32 reserved (0)
//   graph section, zlib-deflated (names compress well; they are most of the graph's bytes):
//     metadata (string map), inputs and outputs (name, dtype, dims; -1 = symbolic), nodes (name,
//     op, inputs, outputs, attributes int/float/string/ints/floats), tensor declarations (name,
//     dtype, dims), quantized weight declarations (layer node, weight name, dims, bits, symmetric,
//     granularity, axis, group size), activation quantizers (tensor, bits, symmetric, scale, zero
//     point).
//   data section, stored raw, in declaration order: each float/int64 tensor's elements; then per
//     quantized weight its scales (f32, one per parameter: 1 / C / C x G), its zero points (asym
//     only: one u8 each, u16 for 16-bit weights; stored as z - qmin) and its codes bit-packed
//     (pack/bitpack.h: u = q - qmin, row-major in the weight's own layout).
//   Version 1.1 adds, after each weight declaration's group size, a u8 table form (QWeight::form):
//     0 affine as above; 1 row-wise table (per row: fp16 scale, fp16 offset; no zero points);
//     2 codebook table (per row: 2^bits fp16 centroids). Forms 1 and 2 are [rows, dim] tables,
//     asymmetric per-channel on axis 0, 2..8 bits (quant/rowwise_ref.h). A model without table forms
//     is written as 1.0, byte for byte as before (1.0 readers read it); 1.0 files read as form 0.
//     A 1.0 reader refuses a 1.1 file ("unread bytes" in the graph section).
// The reader checks the magic, version, endianness, size, CRC, then every count and length against
// the bytes left, and the semantic invariants (bits, axis, parameter counts, codes in range);
// anything wrong is a mixq::Error(kInvalidModel) naming the file and the field.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mixq::pack {

enum class ElemType : uint8_t { kFloat32 = 1, kInt64 = 7 };  // ONNX dtype codes
const char* elem_type_name(ElemType t);

struct Tensor {
  std::string name;
  ElemType dtype = ElemType::kFloat32;
  std::vector<int64_t> dims;
  std::vector<float> f;     // kFloat32 data (row-major)
  std::vector<int64_t> i;   // kInt64 data
  int64_t numel() const;
};

struct Attr {
  // kTensor: `s` names the stored tensor (PackedModel::tensors) holding the value, e.g.
  // ConstantOfShape's `value`.
  enum Type : uint8_t { kInt = 1, kFloat = 2, kString = 3, kInts = 4, kFloats = 5, kTensor = 6 };
  Type type = kInt;
  int64_t i = 0;
  float f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<float> floats;
};

struct Node {
  std::string name, op;
  std::vector<std::string> inputs, outputs;  // "" marks an omitted optional input
  std::map<std::string, Attr> attrs;
  const Attr* attr(const std::string& k) const { auto it = attrs.find(k); return it == attrs.end() ? nullptr : &it->second; }
};

struct ValueDecl {
  std::string name;
  ElemType dtype = ElemType::kFloat32;
  std::vector<int64_t> dims;  // -1: symbolic (batch)
};

enum class Gran : uint8_t { kPerTensor = 0, kPerChannel = 1, kPerGroup = 2 };

// One quantized weight. Codes q in [qmin, qmax]; dequantized value s[p] * (q - z[p]) with p the
// parameter index of quant/qscheme.h (per-tensor 0, per-channel c, per-group c * G + k / gs).
// Embedding tables in a row-wise form (form 1): s[r] * q + offsets[r]; codebook (form 2):
// codebook[r * 2^bits + q]. Their scales / offsets / centroids are fp16 values held as float.
struct QWeight {
  std::string node;    // the layer node reading it
  std::string tensor;  // the weight's value name (the node's input)
  std::vector<int64_t> dims;
  int bits = 8;        // 2..8 or 16
  bool symmetric = false;
  Gran granularity = Gran::kPerChannel;
  int64_t axis = 0;    // normalised, 0 <= axis < rank (0 for rank-0)
  int64_t group_size = 0;
  std::vector<float> scales;        // num_params()
  std::vector<int32_t> zero_points; // num_params(), in [qmin, qmax] (all 0 when symmetric)
  std::vector<uint8_t> packed;      // packed_bytes(numel, bits): u = q - qmin
  uint8_t form = 0;                 // 0 affine, 1 row-wise (scale, offset), 2 codebook
  std::vector<float> offsets;       // form 1: one per row
  std::vector<float> codebook;      // form 2: rows x 2^bits

  int64_t qmin() const { return symmetric ? -(int64_t(1) << (bits - 1)) : 0; }
  int64_t qmax() const { return symmetric ? (int64_t(1) << (bits - 1)) - 1 : (int64_t(1) << bits) - 1; }
  int64_t numel() const;
  // The 2-D view of quant/qscheme.h: C channels (axis), K = numel / C, groups per channel.
  int64_t channels() const;
  int64_t k() const { return channels() ? numel() / channels() : 0; }
  int64_t groups() const;
  int64_t num_params() const { return granularity == Gran::kPerTensor ? 1 : channels() * groups(); }
  // Codes q (not u) of every element, row-major in `dims`.
  std::vector<int32_t> codes() const;
  // Dequantized float weight, row-major in `dims` (the reference the kernels are tested against).
  std::vector<float> dequantize() const;
};

// Per-tensor activation quantizer applied to `tensor` where a quantized layer reads it.
struct QAct {
  std::string tensor;
  int bits = 8;
  bool symmetric = false;
  float scale = 1;
  float zero_point = 0;  // integer in [qmin, qmax]
  int64_t qmin() const { return symmetric ? -(int64_t(1) << (bits - 1)) : 0; }
  int64_t qmax() const { return symmetric ? (int64_t(1) << (bits - 1)) - 1 : (int64_t(1) << bits) - 1; }
};

struct PackedModel {
  std::map<std::string, std::string> metadata;  // the source model's metadata_props (preprocessing)
  std::vector<ValueDecl> inputs, outputs;
  std::vector<Node> nodes;       // topological order
  std::vector<Tensor> tensors;   // everything that stays float (biases, norms, constants) + int64
  std::vector<QWeight> weights;
  std::vector<QAct> acts;
};

constexpr uint16_t kVersionMajor = 1, kVersionMinor = 1;  // the newest minor written (only when needed)
constexpr size_t kHeaderBytes = 40;

// Serializes `m` (checks the same invariants the reader does: a writer bug must not produce a
// file the reader refuses).
std::string write_mxq(const PackedModel& m);
// The size of the file write_mxq(m) makes, from the declarations alone: tensor data, scales, zero
// points and codes are not read (they may be empty), so a plan's file size is known without
// holding a second copy of the model's weights (quant/plan's structure bytes on a 100 MB model).
uint64_t mxq_file_size(const PackedModel& m);
// Parses a whole file's bytes; `where` names the file in errors.
PackedModel read_mxq(const std::string& bytes, const std::string& where);
PackedModel load_mxq(const std::string& path);                 // kIO when unreadable
void save_mxq(const PackedModel& m, const std::string& path);  // atomic

// Byte counts of a written file by part, for the size report against the plan.
struct MxqSizes {
  int64_t total = 0, header = 0, graph = 0, tensor_data = 0, weight_codes = 0, weight_params = 0;
};
MxqSizes mxq_sizes(const PackedModel& m, const std::string& bytes);

}  // namespace mixq::pack
