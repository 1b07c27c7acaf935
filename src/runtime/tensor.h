// The runtime's tensor: float32 or int64, row-major, owning its data. No libtorch.
//
// Between integer layers a value may be held in another form (chosen at load, runtime.cpp):
//   - `nhwc`: a rank-4 float tensor whose memory is [N][H][W][C] while `shape` stays the logical
//     [N, C, H, W] (convolutions read and write channels-last without transposing);
//   - codes: `u8` holds the activation codes of the value's reader's quantizer `q`
//     (code = clamp(round_half_even(x * (1 / q.scale)) + q.zq, q.lo, q.hi) - q.lo: kernels/quantize.h),
//     channels-last.
//     Codes only (`f` empty) go to integer layers reading that quantizer and nothing else; a value
//     with both (`f` channels-last too) also serves float readers (a residual stream read by the
//     next block's first convolution and by the next residual Add).
// Ops that do not read a form say so (Op::takes_nhwc) and get a plain NCHW float copy.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/epilogue.h"
#include "pack/mxq_format.h"

namespace mixq::rt {

using pack::ElemType;

struct Tensor {
  ElemType dtype = ElemType::kFloat32;
  std::vector<int64_t> shape;
  std::vector<float> f;    // kFloat32
  std::vector<int64_t> i;  // kInt64
  bool nhwc = false;         // rank 4, memory channels-last (float or codes)
  std::vector<uint8_t> u8;   // activation codes (when is_codes())
  kernels::OutQuant q;       // their quantizer
  bool codes = false;

  bool has_codes() const { return codes; }
  bool is_codes() const { return codes && f.empty(); }  // codes only

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
