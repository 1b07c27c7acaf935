// The bodies of quantize_u8, included once per ISA file (each compiled with its own -m flags).
//
// The fast paths divide only where it matters. x * (1/scale) is within 2 ulp of the correctly
// rounded x / scale, so both round to the same integer unless the product lies within a few ulp
// of a rounding boundary k + 0.5; a chunk of 16 values where any product does (about 1 in 300
// chunks of real activations) is redone with the division. Division throughput (one vector per
// ~10 cycles) otherwise bounds every requantizing epilogue. Results equal the reference's bit
// for bit (tests/unit/kernels_test.cpp QuantizeU8, epilogue tests: ties and their neighbours).
#pragma once

#include <cmath>

#include "kernels/quantize.h"

namespace mixq::kernels {

// The reference body: what the simulation's QuantizeLinear computes.
#define MIXQ_QUANTIZE_U8_BODY                                                   \
  for (int64_t i = 0; i < n; ++i) {                                             \
    float q = round_half_even(x[i] / scale) + zq;                               \
    q = q < lo ? lo : (q > hi ? hi : q);                                        \
    out[i] = static_cast<uint8_t>(static_cast<int32_t>(q - lo));                \
  }

constexpr int64_t kQuantChunk = 16;

// Codes of n <= kQuantChunk values (see above); `inv` = 1 / scale.
inline void quantize_chunk(const float* __restrict x, int64_t n, float scale, float inv, float zq, float lo, float hi,
                           uint8_t* __restrict out) {
  // 2 ulp of |t| is 2^-22 |t|; the margin is 8x that, plus the relative error of inv itself.
  constexpr float kTol = 1.0f / (1 << 19);
  float r[kQuantChunk];
  int need = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float t = x[i] * inv;
    const float rt = round_half_even(t);
    const float d = std::fabs(std::fabs(t - rt) - 0.5f);
    need |= !(d > kTol * std::fabs(t));  // (also NaN / inf: those take the division)
    r[i] = rt;
  }
  if (need)
    for (int64_t i = 0; i < n; ++i) r[i] = round_half_even(x[i] / scale);
  for (int64_t i = 0; i < n; ++i) {
    float q = r[i] + zq;
    q = q < lo ? lo : (q > hi ? hi : q);
    out[i] = static_cast<uint8_t>(static_cast<int32_t>(q - lo));
  }
}

inline void quantize_u8_fast(const float* __restrict x, int64_t n, float scale, float zq, float lo, float hi,
                             uint8_t* __restrict out) {
  const float inv = 1.0f / scale;
  int64_t i = 0;
  for (; i + kQuantChunk <= n; i += kQuantChunk) quantize_chunk(x + i, kQuantChunk, scale, inv, zq, lo, hi, out + i);
  if (i < n) quantize_chunk(x + i, n - i, scale, inv, zq, lo, hi, out + i);
}

}  // namespace mixq::kernels
