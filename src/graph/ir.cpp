#include "graph/ir.h"

#include <sstream>

#include "mixq/error.h"

namespace mixq {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kFloat: return "float";
    case DType::kUInt8: return "uint8";
    case DType::kInt8: return "int8";
    case DType::kUInt16: return "uint16";
    case DType::kInt16: return "int16";
    case DType::kInt32: return "int32";
    case DType::kInt64: return "int64";
    case DType::kString: return "string";
    case DType::kBool: return "bool";
    case DType::kFloat16: return "float16";
    case DType::kDouble: return "double";
    case DType::kUInt32: return "uint32";
    case DType::kUInt64: return "uint64";
    case DType::kComplex64: return "complex64";
    case DType::kComplex128: return "complex128";
    case DType::kBFloat16: return "bfloat16";
    default: return "undefined";
  }
}

at::ScalarType scalar_type_for(DType t, const std::string& what) {
  switch (t) {
    case DType::kFloat: return at::kFloat;
    case DType::kDouble: return at::kDouble;
    case DType::kFloat16: return at::kHalf;
    case DType::kBFloat16: return at::kBFloat16;
    case DType::kInt8: return at::kChar;
    case DType::kUInt8: return at::kByte;
    case DType::kInt16: return at::kShort;
    case DType::kInt32: return at::kInt;
    case DType::kInt64: return at::kLong;
    case DType::kBool: return at::kBool;
    case DType::kUInt16: return at::kInt;   // widened: libtorch 1.13 has no uint16
    case DType::kUInt32: return at::kLong;  // widened
    case DType::kUInt64: return at::kLong;  // range-checked on load
    default:
      throw Error(ErrorKind::kUnsupported,
                  detail::concat(what, ": element type ", dtype_name(t),
                                 " is not supported by mixq (supported: float, double, float16, "
                                 "bfloat16, int8-64, uint8-64, bool)"));
  }
}

DType dtype_of(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return DType::kFloat;
    case at::kDouble: return DType::kDouble;
    case at::kHalf: return DType::kFloat16;
    case at::kBFloat16: return DType::kBFloat16;
    case at::kChar: return DType::kInt8;
    case at::kByte: return DType::kUInt8;
    case at::kShort: return DType::kInt16;
    case at::kInt: return DType::kInt32;
    case at::kLong: return DType::kInt64;
    case at::kBool: return DType::kBool;
    default: return DType::kUndefined;
  }
}

std::string ValueInfo::str() const {
  std::ostringstream os;
  os << dtype_name(dtype);
  if (!has_shape) return os.str() + "[?]";
  os << '[';
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) os << ',';
    if (dims[i] >= 0)
      os << dims[i];
    else
      os << (i < dim_names.size() && !dim_names[i].empty() ? dim_names[i] : "?");
  }
  os << ']';
  return os.str();
}

int Graph::producer_of(const std::string& v) const {
  for (size_t i = 0; i < nodes.size(); ++i)
    for (const auto& o : nodes[i].outputs)
      if (o == v) return static_cast<int>(i);
  return -1;
}

std::string Graph::describe(const Node& n) const {
  std::ostringstream os;
  os << "node '" << n.name << "' (" << (n.domain.empty() ? "" : n.domain + ".") << n.op_type;
  auto it = opsets.find(n.domain == "ai.onnx" ? "" : n.domain);
  if (it != opsets.end()) os << ", opset " << it->second;
  os << ")";
  return os.str();
}

}  // namespace mixq
