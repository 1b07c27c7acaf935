// The bodies of the fused reconstruction kernels (kernels/recon.h), included once per ISA
// file; each file compiles them with its own -m flags and -ffp-contract=off, so the paths agree
// bit for bit.
#pragma once

#include "kernels/recon.h"
#include "kernels/quantize.h"

#include <cmath>

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

inline void adam_step_body(float* p, const float* g, float* m, float* v, int64_t n, const AdamStep& a) {
  const float b1 = a.beta1, b2 = a.beta2, c1 = a.one_minus_beta1, c2 = a.one_minus_beta2;
  const float sb = a.sqrt_bias_correction2, eps = a.eps, ns = a.neg_step_size;
  for (int64_t i = 0; i < n; ++i) {
    // Denormals take the CPU's microcoded slow path (~100x per operation), and Adam makes them:
    // gradients of nearly saturated rounding variables square below 1e-38, and where a gradient
    // stays 0 (a clipped code, a saturated h) m decays by 0.9 per step into them after ~800
    // steps. Gradients below 1e-17 and moments below 1e-30 are flushed to 0 instead (selects,
    // not arithmetic, touch the tiny values); the update they carry is below 1e-22.
    const float gi = (g[i] < 1e-17f && g[i] > -1e-17f) ? 0.0f : g[i];
    float mi = m[i] * b1 + gi * c1;
    float vi = v[i] * b2 + c2 * (gi * gi);
    mi = (mi < 1e-30f && mi > -1e-30f) ? 0.0f : mi;
    vi = vi < 1e-30f ? 0.0f : vi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] + ns * (mi / (std::sqrt(vi) / sb + eps));
  }
}

inline void soft_round_forward_body(const float* sg, int64_t n, const SoftRoundParams& p, float* w, float* a) {
  // Locals, not p's members: stores through w / a could alias p, which would block vectorising.
  const float *fl = p.floor, *sc = p.scale, *zp = p.zero;
  const float lo = p.lo, hi = p.hi, zg = p.zeta_minus_gamma, gm = p.gamma, amin = p.a_min;
  for (int64_t i = 0; i < n; ++i) {
    float h = sg[i] * zg + gm;
    h = h < 0.0f ? 0.0f : (h > 1.0f ? 1.0f : h);
    float c = fl[i] + h + zp[i];
    c = c < lo ? lo : (c > hi ? hi : c);
    w[i] = sc[i] * (c - zp[i]);
    const float d = 2.0f * h - 1.0f;
    const float ad = d < 0.0f ? -d : d;
    a[i] = ad < amin ? 0.0f : ad;
  }
}

// greg_beta: the regulariser's upstream gradient times beta; ab null: no regulariser term.
template <bool kReg>
inline void soft_round_backward_body(const float* sg, const float* gw, const float* a, const float* ab, int64_t n,
                                     const SoftRoundParams& p, float greg_beta, float* gv) {
  const float *fl = p.floor, *sc = p.scale, *zp = p.zero;
  const float lo = p.lo, hi = p.hi, zg = p.zeta_minus_gamma, gm = p.gamma;
  for (int64_t i = 0; i < n; ++i) {
    const float raw = sg[i] * zg + gm;
    const float h = raw < 0.0f ? 0.0f : (raw > 1.0f ? 1.0f : raw);
    const float dh = (raw >= 0.0f && raw <= 1.0f) ? zg * (sg[i] * (1.0f - sg[i])) : 0.0f;
    const float c = fl[i] + h + zp[i];
    float g = (c >= lo && c <= hi) ? gw[i] * sc[i] : 0.0f;
    if constexpr (kReg) {
      // d/dh (1 - |2h - 1|^beta) = -2 beta |2h - 1|^(beta - 1) sign(2h - 1); zero where a = 0
      // (2h = 1, or |2h - 1| below a_min). The division never sees 0 / 0.
      const float sgn = 2.0f * h - 1.0f > 0.0f ? 1.0f : -1.0f;
      const float den = a[i] > 0.0f ? a[i] : 1.0f;
      const float pw = a[i] > 0.0f ? ab[i] / den : 0.0f;
      g += greg_beta * (-2.0f * pw * sgn);
    }
    const float r = g * dh;
    gv[i] = (r < 1e-30f && r > -1e-30f) ? 0.0f : r;  // no denormal gradients (see adam_step_body)
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
  void adam_step_##sfx(float* p, const float* g, float* m, float* v, int64_t n, const AdamStep& a) {      \
    detail::adam_step_body(p, g, m, v, n, a);                                                         \
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
