// Shared pieces of the nn op files (nn.cpp, nn_conv.cpp, nn_pool.cpp, nn_norm.cpp).
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "exec/kernel.h"

namespace mixq {
namespace nn {

enum class AutoPad { kNotSet, kSameUpper, kSameLower, kValid };

// The spatial attributes Conv, ConvTranspose and the pools share. Vectors have one entry per
// spatial axis once the rank is known; the rank can stay unknown (nd < 0) until the first
// input arrives when no attribute and no constant weight reveals it.
struct Spatial {
  int64_t nd = -1;
  std::vector<int64_t> kernel;  // empty when kernel_shape is absent (Conv takes it from W)
  std::vector<int64_t> strides, dilations, pads_begin, pads_end;
  AutoPad auto_pad = AutoPad::kNotSet;

  // Reads kernel_shape/strides/dilations/pads/auto_pad and checks their lengths agree.
  void parse(const NodeInfo& info, bool kernel_required, bool allow_dilations);
  // Fixes the rank and fills absent attributes with their defaults (no-op if already set).
  void set_rank(int64_t rank);
  int64_t eff_kernel(size_t i, int64_t k) const { return (k - 1) * dilations[i] + 1; }
  // Begin/end padding of axis i for input length `in` and kernel extent k (dilation applied
  // inside): the SAME_* rule when auto_pad asks for it, else the stored pads.
  void pads_for(size_t i, int64_t in, int64_t k, int64_t& b, int64_t& e) const;
};

// float16/bfloat16 tensors are computed in float: libtorch 1.13's CPU kernels for conv, matmul
// and pooling do not cover them.
inline bool is_reduced_float(const at::Tensor& t) {
  return t.defined() && (t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16);
}
inline at::Tensor to_float_if(const at::Tensor& t, bool cond) {
  return cond && t.defined() ? t.to(at::kFloat) : t;
}

[[noreturn]] void runtime_fail(const std::string& msg);
// Fails unless inputs 0..n-1 are all present (the executor does not check op schemas).
void require_inputs(const NodeInfo& info, size_t n);

const std::vector<OpRow>& conv_rows();
const std::vector<OpRow>& pool_rows();
const std::vector<OpRow>& norm_rows();

}  // namespace nn
}  // namespace mixq
