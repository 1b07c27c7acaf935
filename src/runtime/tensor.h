// The runtime's tensor: float32 or int64, row-major, owning its data. No libtorch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pack/mxq_format.h"

namespace mixq::rt {

using pack::ElemType;

struct Tensor {
  ElemType dtype = ElemType::kFloat32;
  std::vector<int64_t> shape;
  std::vector<float> f;    // kFloat32
  std::vector<int64_t> i;  // kInt64

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  int64_t rank() const { return static_cast<int64_t>(shape.size()); }
  static Tensor floats(std::vector<int64_t> shape) {
    Tensor t;
    t.shape = std::move(shape);
    t.f.resize(static_cast<size_t>(t.numel()));
    return t;
  }
  static Tensor ints(std::vector<int64_t> shape) {
    Tensor t;
    t.dtype = ElemType::kInt64;
    t.shape = std::move(shape);
    t.i.resize(static_cast<size_t>(t.numel()));
    return t;
  }
};

std::string shape_str(const std::vector<int64_t>& s);  // "[1,3,28,28]"

}  // namespace mixq::rt
