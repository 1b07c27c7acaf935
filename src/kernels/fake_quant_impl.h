// The bodies of the fused reconstruction kernels (kernels/fake_quant.h), included once per ISA
// file; each file compiles them with its own -m flags and -ffp-contract=off, so the paths agree
// bit for bit.
#pragma once

#include "kernels/fake_quant.h"
#include "kernels/quantize.h"

namespace mixq::kernels::detail {

constexpr int kLanes = 16;

inline float fq_code(float x, const FqParams& p) { return round_half_even(x / p.s) + p.z; }

inline void fq_forward_body(const float* x, int64_t n, FqParams p, float* y) {
  for (int64_t i = 0; i < n; ++i) {
    float q = fq_code(x[i], p);
    q = q < p.lo ? p.lo : (q > p.hi ? p.hi : q);
    y[i] = (q - p.z) * p.s;
  }
}

// One element's contribution to the step gradient; writes gx when kGx.
template <bool kGx>
inline float fq_backward_one(float x, float g, const FqParams& p, float* gx) {
  const float t = x / p.s;
  const float q0 = round_half_even(t) + p.z;
  const bool in = q0 >= p.lo && q0 <= p.hi;
  const float q = in ? q0 : (q0 < p.lo ? p.lo : p.hi);
  if constexpr (kGx) *gx = in ? g : 0.0f;
  return g * ((q - p.z) - (in ? t : 0.0f));
}

template <bool kGx>
inline double fq_backward_body(const float* x, const float* g, int64_t n, FqParams p, float* gx) {
  float acc[kLanes] = {};
  const int64_t full = n / kLanes * kLanes;
  for (int64_t i = 0; i < full; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += fq_backward_one<kGx>(x[i + j], g[i + j], p, kGx ? gx + i + j : nullptr);
  double sum = 0;
  for (int j = 0; j < kLanes; ++j) sum += acc[j];
  for (int64_t i = full; i < n; ++i) sum += fq_backward_one<kGx>(x[i], g[i], p, kGx ? gx + i : nullptr);
  return sum;
}

template <bool kW>
inline float sq_err_one(float a, float b, const float* w) {
  const float d = a - b;
  if constexpr (kW) return d * d * *w;
  return d * d;
}

template <bool kW>
inline double sq_err_body(const float* a, const float* b, const float* w, int64_t n) {
  float acc[kLanes] = {};
  const int64_t full = n / kLanes * kLanes;
  for (int64_t i = 0; i < full; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += sq_err_one<kW>(a[i + j], b[i + j], kW ? w + i + j : nullptr);
  double sum = 0;
  for (int j = 0; j < kLanes; ++j) sum += acc[j];
  for (int64_t i = full; i < n; ++i) sum += sq_err_one<kW>(a[i], b[i], kW ? w + i : nullptr);
  return sum;
}

inline void sq_err_grad_body(const float* a, const float* b, const float* w, int64_t n, float c, float* ga) {
  if (w) {
    for (int64_t i = 0; i < n; ++i) ga[i] = c * (a[i] - b[i]) * w[i];
  } else {
    for (int64_t i = 0; i < n; ++i) ga[i] = c * (a[i] - b[i]);
  }
}

inline void soft_round_forward_body(const float* sg, int64_t n, const SoftRoundParams& p, float* w, float* a) {
  for (int64_t i = 0; i < n; ++i) {
    float h = sg[i] * p.zeta_minus_gamma + p.gamma;
    h = h < 0.0f ? 0.0f : (h > 1.0f ? 1.0f : h);
    float c = p.floor[i] + h + p.zero[i];
    c = c < p.lo ? p.lo : (c > p.hi ? p.hi : c);
    w[i] = p.scale[i] * (c - p.zero[i]);
    const float d = 2.0f * h - 1.0f;
    a[i] = d < 0.0f ? -d : d;
  }
}

// greg_beta: the regulariser's upstream gradient times beta; ab null: no regulariser term.
template <bool kReg>
inline void soft_round_backward_body(const float* sg, const float* gw, const float* a, const float* ab, int64_t n,
                                     const SoftRoundParams& p, float greg_beta, float* gv) {
  for (int64_t i = 0; i < n; ++i) {
    const float raw = sg[i] * p.zeta_minus_gamma + p.gamma;
    const float h = raw < 0.0f ? 0.0f : (raw > 1.0f ? 1.0f : raw);
    const float dh = (raw >= 0.0f && raw <= 1.0f) ? p.zeta_minus_gamma * (sg[i] * (1.0f - sg[i])) : 0.0f;
    const float c = p.floor[i] + h + p.zero[i];
    float g = (c >= p.lo && c <= p.hi) ? gw[i] * p.scale[i] : 0.0f;
    if constexpr (kReg) {
      // d/dh (1 - |2h - 1|^beta) = -2 beta |2h - 1|^(beta - 1) sign(2h - 1); zero where 2h - 1 = 0
      const float sgn = 2.0f * h - 1.0f > 0.0f ? 1.0f : -1.0f;
      const float pw = a[i] > 0.0f ? ab[i] / a[i] : 0.0f;
      g += greg_beta * (-2.0f * pw * sgn);
    }
    gv[i] = g * dh;
  }
}

}  // namespace mixq::kernels::detail

#define MIXQ_FQ_DEFINE(sfx)                                                                           \
  void fq_forward_##sfx(const float* x, int64_t n, FqParams p, float* y) {                            \
    detail::fq_forward_body(x, n, p, y);                                                              \
  }                                                                                                   \
  double fq_backward_##sfx(const float* x, const float* g, int64_t n, FqParams p, float* gx) {        \
    return gx ? detail::fq_backward_body<true>(x, g, n, p, gx) : detail::fq_backward_body<false>(x, g, n, p, gx); \
  }                                                                                                   \
  double sq_err_##sfx(const float* a, const float* b, const float* w, int64_t n) {                    \
    return w ? detail::sq_err_body<true>(a, b, w, n) : detail::sq_err_body<false>(a, b, w, n);        \
  }                                                                                                   \
  void sq_err_grad_##sfx(const float* a, const float* b, const float* w, int64_t n, float c, float* ga) { \
    detail::sq_err_grad_body(a, b, w, n, c, ga);                                                      \
  }                                                                                                   \
  void soft_round_forward_##sfx(const float* sg, int64_t n, const SoftRoundParams& p, float* w, float* a) { \
    detail::soft_round_forward_body(sg, n, p, w, a);                                                  \
  }                                                                                                   \
  void soft_round_backward_##sfx(const float* sg, const float* gw, const float* a, const float* ab, int64_t n, \
                                 const SoftRoundParams& p, float greg_beta, float* gv) {              \
    if (ab)                                                                                           \
      detail::soft_round_backward_body<true>(sg, gw, a, ab, n, p, greg_beta, gv);                     \
    else                                                                                              \
      detail::soft_round_backward_body<false>(sg, gw, a, ab, n, p, greg_beta, gv);                    \
  }
