// Quantization schemes and their parameters. The scheme itself, its notation and the exact
// per-tensor / per-channel / per-group layout are in quant/qscheme.h (libtorch-free); this header
// adds the tensors that hold the parameters.
#pragma once

#include <ATen/core/Tensor.h>

#include "quant/qscheme.h"

namespace mixq {

// Scale and zero point, float32, contiguous, shaped by param_shape():
//   per-tensor:  scalar tensors [];
//   per-channel: size C on `axis`, 1 elsewhere (broadcasts against the tensor);
//   per-group:   [C, G], row-major over the 2-D view W2 [C, K] of qscheme.h: entry (c, g) covers
//                W2[c, g * group_size : (g + 1) * group_size]. It does not broadcast against the
//                tensor; quantize() expands it. Exporters wanting ONNX blocked quantization
//                (opset 21, block_size = group_size) write W2 (a transpose/reshape of W) with
//                scale [C, G] and block axis 1.
// scale > 0 (a zero-width range gets 1); zero_point holds integers in [qmin, qmax] (0 when
// symmetric).
struct QParams {
  at::Tensor scale;
  at::Tensor zero_point;
};

}  // namespace mixq
