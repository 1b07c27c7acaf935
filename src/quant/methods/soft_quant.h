// Differentiable quantizers used by the reconstruction methods.
//
// SoftRounding (AdaRound, used layer-wise by AdaRound and block-wise by BRECQ):
//   W~ = s * (clip(floor(W / s) + h(V) + z, qmin, qmax) - z),
//   h(V) = clip(sigmoid(V) * (zeta - gamma) + gamma, 0, 1), zeta = 1.1, gamma = -0.1,
//   V initialised so that h(V) = frac(W / s) (W~ = W before clipping); after optimisation the
//   codes are hard: floor(W / s) + [V >= 0] + z, clipped: at most one step from floor, and at
//   initialisation exactly round-half-up of W / s (nearest rounding).
//   Regulariser: sum(1 - |2 h(V) - 1|^beta).
// FakeQuantSte: s * (clip(round(x / s) + z, qmin, qmax) - z) with the straight-through estimator
//   for round (LSQ's step-size gradient follows from autograd through x / s and the final * s).
#pragma once

#include <ATen/core/Tensor.h>

#include <utility>

#include "quant/scheme.h"

namespace mixq {

class SoftRounding {
 public:
  static constexpr double kZeta = 1.1, kGamma = -0.1;
  // w: the float weight; p / scheme: its quantizer (any granularity).
  SoftRounding(const at::Tensor& w, const QParams& p, const QScheme& scheme);
  at::Tensor& v() { return v_; }                  // the rounding variables (requires_grad)
  at::Tensor h() const;                           // h(V), differentiable
  at::Tensor soft_weight() const;                 // W~ with soft rounding, differentiable in V
  at::Tensor regularizer(double beta) const;      // 0-d, differentiable
  // Both in one fused pass (quant/methods/fused_quant.h), what the loops use; soft_weight() and
  // regularizer() are its reference. beta <= 0: no regulariser (second is undefined).
  std::pair<at::Tensor, at::Tensor> soft_weight_and_regularizer(double beta) const;
  at::Tensor hard_codes() const;                  // float integers in [qmin, qmax]
  at::Tensor floor_codes() const { return floor_; }  // floor(W / s) (no zero point, unclipped)

 private:
  at::Tensor floor_, scale_, zero_, v_;
  at::Tensor scale_full_, zero_full_;  // scale_ / zero_ expanded to the weight's shape (fused path)
  double qmin_, qmax_;
};

// Round with a straight-through gradient: forward round-half-to-even, backward identity.
at::Tensor round_ste(const at::Tensor& x);

// Fake quantization with straight-through rounding; scale / zero_point broadcast against x.
at::Tensor fake_quant_ste(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                          double qmin, double qmax);

// Reconstruction loss of BRECQ's reference implementation: |error|^p (p = 2: squared) summed over
// dim 1 (channels / features) and averaged over the rest; `weight` (same shape, optional)
// multiplies it element-wise (Fisher).
at::Tensor reconstruction_loss(const at::Tensor& out, const at::Tensor& target,
                               const at::Tensor& weight = at::Tensor(), double p = 2.0);

}  // namespace mixq
