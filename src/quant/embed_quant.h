// Row-wise quantization of embedding tables on libtorch tensors: fills a QuantizedWeight from the
// scalar reference (quant/rowwise_ref.h), row by row, and dequantizes any quantized weight.
#pragma once

#include <ATen/core/Tensor.h>

#include "quant/qmodel.h"

namespace mixq {

// Quantizes table `w` ([rows, dim], any float dtype) under `embed` (not kNone) at `bits` (2..8)
// into qw: codes, scheme (asymmetric per-channel axis 0), params, offset / codebook. `what` names
// the layer in errors (a table that is not 2-D is kInvalidArgument).
void quantize_table(const at::Tensor& w, EmbedScheme embed, int bits, QuantizedWeight& qw, const std::string& what);

// The float32 value the model computes with: s * (q - z) for the affine schemes, the row-wise
// forms above for tables. Shaped like the weight.
at::Tensor dequantize_weight(const QuantizedWeight& qw);

}  // namespace mixq
