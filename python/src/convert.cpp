#include "convert.h"

#include <vector>

#include "mixq/error.h"

namespace mixq::py {

namespace {

struct DtypePair {
  char kind;     // numpy dtype kind: f, i, u, b
  int itemsize;
  at::ScalarType type;
};
// The dtypes mixq's readers take from .npy files too (data/npy.h).
constexpr DtypePair kDtypes[] = {
    {'f', 4, at::kFloat}, {'f', 8, at::kDouble}, {'f', 2, at::kHalf}, {'i', 1, at::kChar},
    {'i', 2, at::kShort}, {'i', 4, at::kInt},    {'i', 8, at::kLong}, {'u', 1, at::kByte},
    {'b', 1, at::kBool},
};

}  // namespace

at::Tensor tensor_from_array(const pyb::array& a, const std::string& what) {
  const pyb::dtype dt = a.dtype();
  at::ScalarType type = at::kFloat;
  bool found = false;
  for (const auto& d : kDtypes)
    if (d.kind == dt.kind() && d.itemsize == static_cast<int>(dt.itemsize())) {
      type = d.type;
      found = true;
    }
  MIXQ_CHECK(found, ErrorKind::kInvalidData, what, ": arrays of dtype ", dt.attr("name").cast<std::string>(),
             " are not supported (use float32, an integer type, uint8 images or bool)");
  std::vector<int64_t> sizes, strides;
  for (pyb::ssize_t i = 0; i < a.ndim(); ++i) {
    sizes.push_back(a.shape(i));
    MIXQ_CHECK(a.strides(i) % a.itemsize() == 0, ErrorKind::kInvalidData, what, ": unaligned strides");
    strides.push_back(a.strides(i) / a.itemsize());
  }
  // from_blob does not own the memory: clone() copies it (contiguously) while the array is alive.
  return at::from_blob(const_cast<void*>(a.data()), sizes, strides, at::TensorOptions().dtype(type))
      .clone(at::MemoryFormat::Contiguous);
}

pyb::array array_from_tensor(const at::Tensor& t0) {
  at::Tensor t = t0.contiguous().cpu();
  std::vector<pyb::ssize_t> shape(t.sizes().begin(), t.sizes().end());
  switch (t.scalar_type()) {
    case at::kFloat: return pyb::array_t<float>(shape, t.data_ptr<float>());
    case at::kDouble: return pyb::array_t<double>(shape, t.data_ptr<double>());
    case at::kLong: return pyb::array_t<int64_t>(shape, t.data_ptr<int64_t>());
    case at::kInt: return pyb::array_t<int32_t>(shape, t.data_ptr<int32_t>());
    case at::kByte: return pyb::array_t<uint8_t>(shape, t.data_ptr<uint8_t>());
    case at::kChar: return pyb::array_t<int8_t>(shape, t.data_ptr<int8_t>());
    case at::kBool: return pyb::array_t<bool>(shape, t.data_ptr<bool>());
    default: return array_from_tensor(t.to(at::kFloat));  // half and others: as float32
  }
}

std::map<std::string, at::Tensor> tensors_from_dict(const pyb::dict& d) {
  std::map<std::string, at::Tensor> out;
  for (auto item : d) {
    const std::string name = pyb::str(item.first);
    out[name] = tensor_from_array(pyb::array::ensure(item.second), "array '" + name + "'");
  }
  return out;
}

}  // namespace mixq::py
