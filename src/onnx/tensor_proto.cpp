#include "onnx/tensor_proto.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "mixq/error.h"

namespace mixq {

namespace fs = std::filesystem;

namespace {

size_t proto_elem_size(DType t) {
  switch (t) {
    case DType::kFloat: case DType::kInt32: case DType::kUInt32: return 4;
    case DType::kDouble: case DType::kInt64: case DType::kUInt64: return 8;
    case DType::kFloat16: case DType::kBFloat16: case DType::kInt16: case DType::kUInt16: return 2;
    case DType::kInt8: case DType::kUInt8: case DType::kBool: return 1;
    default: return 0;
  }
}

// Reads `length` bytes at `offset` of an external data file, resolved inside base_dir.
std::string read_external(const onnx::TensorProto& tp, const std::string& base_dir,
                          const std::string& what, size_t expected) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& kv : tp.external_data()) {
    try {
      if (kv.key() == "location") location = kv.value();
      else if (kv.key() == "offset") offset = std::stoll(kv.value());
      else if (kv.key() == "length") length = std::stoll(kv.value());
    } catch (const std::exception&) {
      throw Error(ErrorKind::kInvalidModel, detail::concat(what, ": external_data '", kv.key(),
                                                           "' is not a number: '", kv.value(), "'"));
    }
  }
  MIXQ_CHECK(!location.empty(), ErrorKind::kInvalidModel, what,
             ": data_location is EXTERNAL but no 'location' key is given");
  fs::path p(location);
  MIXQ_CHECK(p.is_relative() && location.find("..") == std::string::npos, ErrorKind::kInvalidModel,
             what, ": external data location '", location,
             "' must be a relative path inside the model's directory");
  fs::path full = fs::path(base_dir.empty() ? "." : base_dir) / p;
  std::ifstream f(full, std::ios::binary);
  MIXQ_CHECK(f.good(), ErrorKind::kIO, what, ": cannot open external data file '", full.string(),
             "' (keep it beside the .onnx file)");
  f.seekg(0, std::ios::end);
  int64_t file_size = static_cast<int64_t>(f.tellg());
  if (length < 0) length = static_cast<int64_t>(expected);
  MIXQ_CHECK(offset >= 0 && length >= 0 && offset <= file_size && length <= file_size - offset,
             ErrorKind::kInvalidModel, what, ": external data [offset ", offset, ", length ",
             length, "] lies outside '", full.string(), "' (", file_size, " bytes)");
  MIXQ_CHECK(static_cast<size_t>(length) == expected, ErrorKind::kInvalidModel, what,
             ": external data length ", length, " does not match the tensor's ", expected,
             " bytes");
  std::string buf(static_cast<size_t>(length), '\0');
  f.seekg(offset);
  f.read(buf.data(), length);
  MIXQ_CHECK(f.good(), ErrorKind::kIO, what, ": short read from '", full.string(), "'");
  return buf;
}

// Values in the typed repeated field that holds `dt` (ONNX's TensorProto layout).
int64_t typed_count(const onnx::TensorProto& tp, DType dt) {
  switch (dt) {
    case DType::kFloat: return tp.float_data_size();
    case DType::kDouble: return tp.double_data_size();
    case DType::kInt64: return tp.int64_data_size();
    case DType::kUInt32: case DType::kUInt64: return tp.uint64_data_size();
    default: return tp.int32_data_size();
  }
}

template <typename Src, typename Dst>
void copy_field(const Src& field, Dst* dst) {
  int64_t i = 0;
  for (const auto& v : field) dst[i++] = static_cast<Dst>(v);
}

}  // namespace

at::Tensor tensor_from_proto(const onnx::TensorProto& tp, const std::string& base_dir,
                             const std::string& what) {
  const DType dt = static_cast<DType>(tp.data_type());
  const at::ScalarType st = scalar_type_for(dt, what);
  std::vector<int64_t> shape;
  int64_t numel = 1;
  for (int64_t d : tp.dims()) {
    MIXQ_CHECK(d >= 0, ErrorKind::kInvalidModel, what, ": negative dimension ", d);
    MIXQ_CHECK(d == 0 || numel <= std::numeric_limits<int64_t>::max() / d / 8,
               ErrorKind::kInvalidModel, what, ": shape is too large");
    numel *= d;
    shape.push_back(d);
  }
  const size_t esize = proto_elem_size(dt);
  MIXQ_ASSERT(esize > 0);

  // Raw little-endian bytes, from the proto or from an external file. Every source is checked
  // against the declared shape BEFORE the tensor is allocated: a huge declared dimension in a
  // small file is an error naming the tensor, never an allocation of what it claims.
  std::string external;
  const std::string* raw = nullptr;
  if (tp.data_location() == onnx::TensorProto_DataLocation_EXTERNAL) {
    external = read_external(tp, base_dir, what, static_cast<size_t>(numel) * esize);
    raw = &external;
  } else if (tp.has_raw_data()) {
    raw = &tp.raw_data();
    MIXQ_CHECK(raw->size() == static_cast<size_t>(numel) * esize, ErrorKind::kInvalidModel, what,
               ": raw_data holds ", raw->size(), " bytes but shape ", at::IntArrayRef(shape),
               " of ", dtype_name(dt), " needs ", numel * static_cast<int64_t>(esize));
  } else {
    const int64_t n = typed_count(tp, dt);
    MIXQ_CHECK(n == numel, ErrorKind::kInvalidModel, what, ": holds ", n, " values but shape ",
               at::IntArrayRef(shape), " needs ", numel);
  }
  at::Tensor out = at::empty(shape, at::TensorOptions().dtype(st));

  if (raw != nullptr) {
    const char* src = raw->data();
    if (dt == DType::kUInt16) {
      auto* d = out.data_ptr<int32_t>();
      for (int64_t i = 0; i < numel; ++i) { uint16_t v; std::memcpy(&v, src + 2 * i, 2); d[i] = v; }
    } else if (dt == DType::kUInt32) {
      auto* d = out.data_ptr<int64_t>();
      for (int64_t i = 0; i < numel; ++i) { uint32_t v; std::memcpy(&v, src + 4 * i, 4); d[i] = v; }
    } else if (dt == DType::kUInt64) {
      auto* d = out.data_ptr<int64_t>();
      for (int64_t i = 0; i < numel; ++i) {
        uint64_t v;
        std::memcpy(&v, src + 8 * i, 8);
        MIXQ_CHECK(v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                   ErrorKind::kUnsupported, what, ": uint64 value ", v, " does not fit in int64");
        d[i] = static_cast<int64_t>(v);
      }
    } else {
      if (numel > 0) std::memcpy(out.data_ptr(), src, static_cast<size_t>(numel) * esize);
    }
    return out;
  }

  // Typed repeated fields.
  auto check_count = [&](int64_t n) {
    MIXQ_CHECK(n == numel, ErrorKind::kInvalidModel, what, ": holds ", n, " values but shape ",
               at::IntArrayRef(shape), " needs ", numel);
  };
  switch (dt) {
    case DType::kFloat:
      check_count(tp.float_data_size());
      copy_field(tp.float_data(), out.data_ptr<float>());
      break;
    case DType::kDouble:
      check_count(tp.double_data_size());
      copy_field(tp.double_data(), out.data_ptr<double>());
      break;
    case DType::kInt64:
      check_count(tp.int64_data_size());
      copy_field(tp.int64_data(), out.data_ptr<int64_t>());
      break;
    case DType::kInt32: case DType::kUInt16:
      check_count(tp.int32_data_size());
      copy_field(tp.int32_data(), out.data_ptr<int32_t>());
      break;
    case DType::kInt16:
      check_count(tp.int32_data_size());
      copy_field(tp.int32_data(), out.data_ptr<int16_t>());
      break;
    case DType::kInt8:
      check_count(tp.int32_data_size());
      copy_field(tp.int32_data(), out.data_ptr<int8_t>());
      break;
    case DType::kUInt8:
      check_count(tp.int32_data_size());
      copy_field(tp.int32_data(), out.data_ptr<uint8_t>());
      break;
    case DType::kBool: {
      check_count(tp.int32_data_size());
      bool* d = out.data_ptr<bool>();
      int64_t i = 0;
      for (auto v : tp.int32_data()) d[i++] = v != 0;
      break;
    }
    case DType::kFloat16: case DType::kBFloat16: {
      // Stored as 16-bit patterns in int32_data.
      check_count(tp.int32_data_size());
      auto* d = static_cast<uint16_t*>(out.data_ptr());
      int64_t i = 0;
      for (auto v : tp.int32_data()) d[i++] = static_cast<uint16_t>(v);
      break;
    }
    case DType::kUInt32: case DType::kUInt64: {
      check_count(tp.uint64_data_size());
      auto* d = out.data_ptr<int64_t>();
      int64_t i = 0;
      for (auto v : tp.uint64_data()) {
        MIXQ_CHECK(v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                   ErrorKind::kUnsupported, what, ": uint64 value ", v, " does not fit in int64");
        d[i++] = static_cast<int64_t>(v);
      }
      break;
    }
    default:
      MIXQ_ASSERT(false, "unhandled dtype");
  }
  return out;
}

onnx::TensorProto tensor_to_proto(const at::Tensor& t, const std::string& name) {
  const DType dt = dtype_of(t.scalar_type());
  MIXQ_CHECK(dt != DType::kUndefined, ErrorKind::kUnsupported, "tensor '", name, "': element type ",
             t.scalar_type(), " cannot be stored in an ONNX file");
  // raw_data is little-endian by definition; mixq only builds for little-endian hosts.
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "raw_data needs a little-endian host");
  at::Tensor c = t.detach().to(at::kCPU).contiguous();
  onnx::TensorProto tp;
  tp.set_name(name);
  tp.set_data_type(static_cast<int32_t>(dt));
  for (int64_t d : c.sizes()) tp.add_dims(d);
  const size_t nbytes = static_cast<size_t>(c.numel()) * c.element_size();
  tp.set_raw_data(nbytes ? std::string(static_cast<const char*>(c.data_ptr()), nbytes)
                         : std::string());
  return tp;
}

}  // namespace mixq
