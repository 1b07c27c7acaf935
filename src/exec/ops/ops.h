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
// RNN, GRU, LSTM.
const std::vector<OpRow>& rnn_op_rows();
// Less common elementwise ops: trigonometry, IsNaN/IsInf, Selu/Celu/..., Mod, Xor, bit ops.
const std::vector<OpRow>& elementwise_more_op_rows();
// DepthToSpace/SpaceToDepth, Size, Einsum, Hardmax, EyeLike, CenterCropPad, LRN, MVN, GroupNorm...
const std::vector<OpRow>& misc_op_rows();

}  // namespace mixq
