// Fused autograd functions for the reconstruction loops: the same values and gradients as the
// composite expressions in soft_quant.h (which stay as their reference and their fallback), in
// one or two passes over memory instead of four to eight element-wise ops per direction, each
// with its own dispatch, allocation and OpenMP region. In a BRECQ iteration on a small CNN those
// passes cost more than the convolutions (BENCHMARKS.md, reconstruction speed).
//
// Each falls back to the composite expression when its fast-path conditions do not hold (dtype
// other than float32, overlapping or non-dense strides, a zero point that is learned, a
// per-channel activation scale), so callers never need to check.
#pragma once

#include <ATen/core/Tensor.h>

#include <utility>

namespace mixq {

// fake_quant_ste(x, scale, zero_point, qmin, qmax) for a per-tensor scale (learnable) and a
// fixed zero point: forward one pass, backward one pass that also reduces LSQ's step gradient.
at::Tensor fake_quant_fused(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                            double qmin, double qmax);

// reconstruction_loss(out, target, weight, p) with gradients for `out` only (one fused pass for
// p = 2; other p through libtorch's ops).
at::Tensor reconstruction_loss_fused(const at::Tensor& out, const at::Tensor& target,
                                     const at::Tensor& weight = at::Tensor(), double p = 2.0);

// AdaRound's soft weight and (beta > 0) its regulariser from rounding variables v, in one pass
// each way: the same as SoftRounding::soft_weight() and regularizer(beta). floor / scale / zero
// are dense tensors of v's shape. Returns {W~, reg} (reg undefined when beta <= 0).
std::pair<at::Tensor, at::Tensor> soft_round_fused(const at::Tensor& v, const at::Tensor& floor,
                                                   const at::Tensor& scale, const at::Tensor& zero, double qmin,
                                                   double qmax, double beta);

}  // namespace mixq
