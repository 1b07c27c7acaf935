// The stored float weight and bias of a layer node, shared by the convolution and the Gemm/MatMul
// ops (ops_conv.cpp, ops_linear.cpp). No libtorch.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/ops.h"

namespace mixq::rt {

// The constant float weight of input `idx` (its dims in *dims), or null when it is the layer's
// quantized weight; kUnsupported when it is computed at run time.
const std::vector<float>* float_weight(const BuildCtx& c, size_t idx, std::vector<int64_t>* dims);
// Input `idx` as n bias values times beta (zeros when absent; one value is broadcast).
std::vector<float> bias_of(const BuildCtx& c, size_t idx, int64_t n, float beta = 1.0f);

}  // namespace mixq::rt
