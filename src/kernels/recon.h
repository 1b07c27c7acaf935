// Fused element-wise kernels of the reconstruction loops (BRECQ / AdaRound / AdaQuant), each one
// pass over memory where the composite libtorch expression takes four to eight (a third of a
// BRECQ iteration went to those passes and their dispatch). No libtorch.
//
//   fq_forward:   y = (clamp(round_half_even(x / s) + z, lo, hi) - z) * s        (fake quantize)
//   fq_backward:  gx = g * [lo <= round(x / s) + z <= hi]   (straight-through, clamp-masked)
//                 returns sum(g * ((q - z) - inside * x / s)): LSQ's step-size gradient, i.e. what
//                 autograd gives for the composite expression with round's gradient taken as 1
//   sq_err:       returns sum((a - b)^2 * w)  (w may be null: 1)
//   sq_err_grad:  ga = c * (a - b) * w        (w may be null)
//   adam_step:    one Adam update of n parameters in place (torch::optim::Adam's arithmetic: m, v
//                 moments, flushed to 0 below 1e-30; denom = sqrt(v) / sqrt(1 - beta2^t) + eps;
//                 p -= lr / (1 - beta1^t) * m / denom)
//   soft_round_forward / soft_round_backward: AdaRound's soft weight from sigmoid(V)
//                 (quant/methods/soft_quant.h): h = clip(sg * (zeta - gamma) + gamma, 0, 1),
//                 w = s * (clip(floor + h + z, lo, hi) - z), a = |2h - 1| (for the regulariser,
//                 0 below a_min);
//                 backward gv = (gw * s * [lo <= floor + h + z <= hi]
//                               + greg * -2 beta a^(beta-1) sign(2h - 1)) * dh/dV
//                 with a^beta given (ab, may be null: no regulariser).
//
// Sums accumulate in 16 fixed float lanes per block of 16 elements, then lane by lane in double,
// so every ISA path adds in the same order and returns the same bits as the reference.
#pragma once

#include <cstdint>

#include "kernels/isa.h"

namespace mixq::kernels {

struct FqParams {
  float s, z, lo, hi;
};

struct AdamStep {
  float beta1, beta2, one_minus_beta1, one_minus_beta2;
  float sqrt_bias_correction2, eps, neg_step_size;
};

struct SoftRoundParams {
  const float* floor;
  const float* scale;
  const float* zero;
  float lo, hi;
  float zeta_minus_gamma, gamma;
  // |2h - 1| below a_min is stored as 0: with the regulariser's exponent beta (up to 20), a^beta
  // would be a denormal (slow to produce and to use) that adds nothing above 1e-30.
  float a_min = 0.0f;
};

void fq_forward(const float* x, int64_t n, FqParams p, float* y, Isa isa);
double fq_backward(const float* x, const float* g, int64_t n, FqParams p, float* gx, Isa isa);
double sq_err(const float* a, const float* b, const float* w, int64_t n, Isa isa);
void sq_err_grad(const float* a, const float* b, const float* w, int64_t n, float c, float* ga, Isa isa);
void adam_step(float* p, const float* g, float* m, float* v, int64_t n, const AdamStep& a, Isa isa);
void soft_round_forward(const float* sg, int64_t n, const SoftRoundParams& p, float* w, float* a, Isa isa);
void soft_round_backward(const float* sg, const float* gw, const float* a, const float* ab, int64_t n,
                         const SoftRoundParams& p, float greg_beta, float* gv, Isa isa);

// One set of entry points per ISA (same loops, different -m flags).
#define MIXQ_FQ_DECLARE(sfx)                                                                   \
  void fq_forward_##sfx(const float* x, int64_t n, FqParams p, float* y);                      \
  double fq_backward_##sfx(const float* x, const float* g, int64_t n, FqParams p, float* gx);  \
  double sq_err_##sfx(const float* a, const float* b, const float* w, int64_t n);              \
  void sq_err_grad_##sfx(const float* a, const float* b, const float* w, int64_t n, float c, float* ga);   \
  void adam_step_##sfx(float* p, const float* g, float* m, float* v, int64_t n, const AdamStep& a);      \
  void soft_round_forward_##sfx(const float* sg, int64_t n, const SoftRoundParams& p, float* w, float* a); \
  void soft_round_backward_##sfx(const float* sg, const float* gw, const float* a, const float* ab, int64_t n, \
                                 const SoftRoundParams& p, float greg_beta, float* gv);
MIXQ_FQ_DECLARE(ref)
MIXQ_FQ_DECLARE(avx2)
MIXQ_FQ_DECLARE(avx512)
#undef MIXQ_FQ_DECLARE

}  // namespace mixq::kernels
