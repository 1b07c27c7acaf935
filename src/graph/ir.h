// mixq's graph IR: what an ONNX model becomes after import.
//
// A Graph owns its nodes (in topological order), the graph inputs/outputs with their declared
// types and shapes, and the initializers as at::Tensor (weights live in libtorch tensors from the
// start, so the executor and quantizers share them without copies). Only src/onnx knows protobuf;
// everything else sees this header.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mixq {

// ONNX TensorProto.DataType codes, kept numerically identical so importer/exporter map 1:1.
enum class DType : int32_t {
  kUndefined = 0, kFloat = 1, kUInt8 = 2, kInt8 = 3, kUInt16 = 4, kInt16 = 5, kInt32 = 6,
  kInt64 = 7, kString = 8, kBool = 9, kFloat16 = 10, kDouble = 11, kUInt32 = 12, kUInt64 = 13,
  kComplex64 = 14, kComplex128 = 15, kBFloat16 = 16,
};
const char* dtype_name(DType t);  // "float", "int64", ...
// The at::ScalarType mixq holds an ONNX dtype in. uint16/uint32/uint64 are widened to
// int32/int64 (libtorch 1.13 has no unsigned types beyond uint8). Strings and complex numbers
// throw kUnsupported naming `what`.
at::ScalarType scalar_type_for(DType t, const std::string& what);
// The ONNX dtype of a libtorch scalar type (kUndefined for types ONNX files cannot hold).
DType dtype_of(at::ScalarType t);

// A declared value type: dtype plus shape. dims[i] == -1 is a symbolic/unknown dimension whose
// name (e.g. "batch") is in dim_names[i]. has_shape == false: rank unknown.
struct ValueInfo {
  std::string name;
  DType dtype = DType::kUndefined;
  bool has_shape = false;
  std::vector<int64_t> dims;
  std::vector<std::string> dim_names;
  std::string str() const;  // "float[batch,1,28,28]"
};

enum class AttrType { kFloat, kInt, kString, kTensor, kFloats, kInts, kStrings, kGraph, kOther };

struct Attribute {
  AttrType type = AttrType::kOther;
  float f = 0;
  int64_t i = 0;
  std::string s;
  at::Tensor t;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
};

// Attribute constructors for graph-building code (passes, exporters, tests).
inline Attribute int_attr(int64_t v) { Attribute a; a.type = AttrType::kInt; a.i = v; return a; }
inline Attribute float_attr(float v) { Attribute a; a.type = AttrType::kFloat; a.f = v; return a; }
inline Attribute string_attr(std::string v) { Attribute a; a.type = AttrType::kString; a.s = std::move(v); return a; }
inline Attribute ints_attr(std::vector<int64_t> v) { Attribute a; a.type = AttrType::kInts; a.ints = std::move(v); return a; }
inline Attribute floats_attr(std::vector<float> v) { Attribute a; a.type = AttrType::kFloats; a.floats = std::move(v); return a; }

struct Node {
  std::string name;     // unique; the importer invents "<op>_<index>" for unnamed nodes
  std::string op_type;  // "Conv"
  std::string domain;   // "" for the default ONNX domain
  std::vector<std::string> inputs;   // "" marks an omitted optional input
  std::vector<std::string> outputs;  // "" marks an omitted optional output
  std::map<std::string, Attribute> attrs;

  const Attribute* attr(const std::string& key) const {
    auto it = attrs.find(key);
    return it == attrs.end() ? nullptr : &it->second;
  }
};

struct Graph {
  std::string name;
  std::vector<Node> nodes;  // topological order (checked by the importer)
  std::vector<ValueInfo> inputs;   // graph inputs that are NOT initializers (what users feed)
  std::vector<ValueInfo> outputs;
  std::map<std::string, ValueInfo> value_info;  // intermediate types the model declares
  std::map<std::string, at::Tensor> initializers;
  std::map<std::string, int64_t> opsets;  // domain -> version; "" is the default domain
  std::map<std::string, std::string> metadata;  // ModelProto.metadata_props
  std::string source_path;  // file it came from (for messages)
  int64_t ir_version = 0;
  std::string producer;

  int64_t opset() const {  // default-domain opset
    auto it = opsets.find("");
    return it == opsets.end() ? 0 : it->second;
  }
  bool is_initializer(const std::string& v) const { return initializers.count(v) != 0; }
  // Index of the node producing value v, or -1 (graph input, initializer, or unknown).
  int producer_of(const std::string& v) const;
  // "node 'conv1' (Conv, opset 13)": the prefix every node-level message starts with.
  std::string describe(const Node& n) const;
};

}  // namespace mixq
