// The bodies of exp_f32 / erf_f32 (vmath.h), included once per ISA file.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/erfc_fit.h"
#include "kernels/vmath.h"

namespace mixq::kernels {

inline float vexp1(float x) {
  const float hi = 88.72283f, lo = -87.33654f;  // e^hi ~ FLT_MAX, e^lo ~ FLT_MIN (normal)
  const bool nan = x != x;
  // NaN goes through the arithmetic as 0 (the result is x anyway, selected below): converting a NaN
  // n to int32 and shifting the result is undefined behaviour (UBSan: scripts/test.sh --sanitize,
  // and fuzzing a .mxq with NaN weights into a Softmax).
  float c = nan ? 0.0f : (x < lo ? lo : (x > hi ? hi : x));
  // n = nearest integer to x / ln2 (magic-number rounding; |c / ln2| < 2^22).
  const float t = c * 1.44269504088896341f;
  const float n = (t + 12582912.0f) - 12582912.0f;
  // r = c - n ln2, ln2 split so that n * ln2_hi is exact.
  float r = c - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  // e^r, |r| <= 0.35: Taylor to degree 7 (relative error < 2e-8).
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // 2^n through the exponent field, in two halves so that n = 128 (x near hi) stays finite.
  const int32_t ni = static_cast<int32_t>(n);
  const int32_t n1 = ni / 2, n2 = ni - n1;
  const int32_t b1 = (n1 + 127) << 23, b2 = (n2 + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &b1, 4);
  std::memcpy(&s2, &b2, 4);
  float y = p * s1 * s2;
  y = x > hi ? __builtin_inff() : y;
  y = x < lo ? 0.0f : y;  // (subnormal results are flushed to 0)
  return nan ? x : y;
}

inline float verf1(float x) {
  const float z = x < 0 ? -x : x;
  const float t = 1.0f / (1.0f + 0.5f * z);
  const float p = erfc_fit_poly(t);
  const float erfc = t * vexp1(-z * z + p);
  float e = 1.0f - erfc;
  // |x| < 0.5: 1 - erfc cancels; the Maclaurin series (to x^15, truncation < 1e-9) instead.
  const float x2 = z * z;
  float q = -1.0f / 75600.0f;       // x^15 / (7! * 15) with sign, then Horner down to x
  q = q * x2 + 1.0f / 9360.0f;
  q = q * x2 - 1.0f / 1320.0f;
  q = q * x2 + 1.0f / 216.0f;
  q = q * x2 - 1.0f / 42.0f;
  q = q * x2 + 1.0f / 10.0f;
  q = q * x2 - 1.0f / 3.0f;
  q = q * x2 + 1.0f;
  const float small = 1.12837916709551257f * z * q;
  e = z < 0.5f ? small : e;
  return x < 0 ? -e : (x != x ? x : e);
}

}  // namespace mixq::kernels

#define MIXQ_VMATH_BODIES(SUFFIX)                                                 \
  void exp_f32_##SUFFIX(const float* x, float* y, int64_t n) {                    \
    for (int64_t i = 0; i < n; ++i) y[i] = vexp1(x[i]);                           \
  }                                                                               \
  void erf_f32_##SUFFIX(const float* x, float* y, int64_t n) {                    \
    for (int64_t i = 0; i < n; ++i) y[i] = verf1(x[i]);                           \
  }
