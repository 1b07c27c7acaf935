// Activation quantization to uint8 codes, the runtime's definition:
//   q = clamp(round_half_even(x * inv) + zq, lo, hi);  out = q - lo  (so signed grids fit uint8)
// with inv = quant_inv(scale) = 1.0f / scale, one correctly rounded float. A multiplication, as
// ONNX Runtime's MLAS requantizes: a vector division costs ~10x a multiplication and bounded every
// requantizing epilogue. It differs from the simulation's x / scale (QuantizeLinear) only where x /
// scale lies within ~2 ulp of a tie k + 0.5, by one code (tests/unit/kernels_test.cpp QuantizeU8).
// Every path (and the fused epilogues, epilogue.h) computes exactly this: same codes bit for bit.
// Paths: the reference loop; AVX2 (the same loop auto-vectorised); AVX-512 by hand. No libtorch.
#pragma once

#include <cstdint>

#include "kernels/isa.h"

namespace mixq::kernels {

// The reciprocal every path multiplies by.
inline float quant_inv(float scale) { return 1.0f / scale; }

void quantize_u8(const float* x, int64_t n, float scale, float zq, float lo, float hi, uint8_t* out, Isa isa);

// nearbyint(t) for |t| <= 2^22 without a libm call: adding 1.5 * 2^23 leaves no fraction bits, so
// the FPU's round-to-nearest-even does the rounding (bit-identical, and the loop vectorises).
// Larger |t| are clamped first: they saturate to lo / hi either way.
inline float round_half_even(float t) {
  constexpr float kMagic = 12582912.0f, kLim = 4194304.0f;
  t = t < -kLim ? -kLim : (t > kLim ? kLim : t);
  return (t + kMagic) - kMagic;
}

// Fake quantization under the same definition, for float kernels that read a quantized input:
// y = scale * (clamp(round_half_even(x * inv) + zq, lo, hi) - zq). The one loop every float-path
// layer (QLinear's float form, ConvTranspose, the recurrent layers) runs.
void fake_quantize_f32(const float* x, int64_t n, float scale, float zq, float lo, float hi, float* y);

void quantize_u8_ref(const float* x, int64_t n, float scale, float zq, float lo, float hi, uint8_t* out);
void quantize_u8_avx2(const float* x, int64_t n, float scale, float zq, float lo, float hi, uint8_t* out);
void quantize_u8_avx512(const float* x, int64_t n, float scale, float zq, float lo, float hi, uint8_t* out);

}  // namespace mixq::kernels
