// Activation quantization to uint8 codes, as the simulation's QuantizeLinear does it in float32:
//   q = clamp(round_half_even(x / scale) + zq, lo, hi);  out = q - lo  (so signed grids fit uint8)
// The division is a division (never x * (1 / scale)): every path gives the same codes bit for bit.
// Paths: the same loop compiled for baseline x86-64, AVX2 and AVX-512 (auto-vectorised). No libtorch.
#pragma once

#include <cstdint>

#include "kernels/isa.h"

namespace mixq::kernels {

void quantize_u8(const float* x, int64_t n, float scale, float zq, float lo, float hi, uint8_t* out, Isa isa);

// nearbyint(t) for |t| <= 2^22 without a libm call: adding 1.5 * 2^23 leaves no fraction bits, so
// the FPU's round-to-nearest-even does the rounding (bit-identical, and the loop vectorises).
// Larger |t| are clamped first: they saturate to lo / hi either way.
inline float round_half_even(float t) {
  constexpr float kMagic = 12582912.0f, kLim = 4194304.0f;
  t = t < -kLim ? -kLim : (t > kLim ? kLim : t);
  return (t + kMagic) - kMagic;
}

void quantize_u8_ref(const float* x, int64_t n, float scale, float zq, float lo, float hi, uint8_t* out);
void quantize_u8_avx2(const float* x, int64_t n, float scale, float zq, float lo, float hi, uint8_t* out);
void quantize_u8_avx512(const float* x, int64_t n, float scale, float zq, float lo, float hi, uint8_t* out);

}  // namespace mixq::kernels
