// Per-file op tables, concatenated by op_table.cpp.
#pragma once

#include <vector>

#include "exec/kernel.h"

namespace mixq {

// Elementwise math, activations, comparisons, Cast/Where, constants, Identity/Dropout, Shape.
const std::vector<OpRow>& elementwise_op_rows();
// Conv/ConvTranspose, Gemm/MatMul, pooling, normalization, Softmax/LogSoftmax.
const std::vector<OpRow>& nn_op_rows();
// Reshape/Transpose/Concat/Split/Slice/(Un)Squeeze/Gather/Pad/Expand/Resize/Reduce*/Flatten.
const std::vector<OpRow>& shape_op_rows();

}  // namespace mixq
