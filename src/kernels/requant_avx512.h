// AVX-512 requantization of 16 floats at a time, bit-identical to quantize_u8's reference
// (quantize.h: round_half_even(v * inv) + zq, clamped). Included only by files compiled with the
// AVX-512 flags.
//
// Differences from the scalar code that cannot change a code:
//   - the clamp comes before the rounding (see Requant), where round_half_even() first clamps |t|
//     to 2^22: beyond that both saturate;
//   - a NaN becomes lo (code 0), where the scalar cast of NaN - lo gives INT_MIN, whose low byte is
//     also 0.
#pragma once

#include <immintrin.h>

#include "kernels/quantize.h"

namespace mixq::kernels::avx512 {

// Clamping before rounding gives the same codes as clamping after it: the bounds are integers
// (in units of the scale, relative to zq) and rounding is monotonic and keeps integers, so
// clamp(round(t) + zq, lo, hi) = round(clamp(t, lo - zq, hi - zq)) + zq; and the clamped value
// converts straight to int32 with round-to-nearest-even (no separate rounding, offset and
// truncation instructions: 5 operations per 16 codes instead of 7).
struct Requant {
  __m512 inv, tlo, thi;  // the clamp bounds as t = v * inv values: lo - zq, hi - zq
  __m512i off;           // zq - grid_lo: the code of t = 0
  Requant(float scale, float zq_, float lo, float hi) : Requant(scale, zq_, lo, hi, lo) {}
  // Codes clamped to [lo, hi] inside the grid whose code 0 is `grid_lo` (lo >= grid_lo; a fused
  // clamp narrows [lo, hi], epilogue_avx512.h).
  Requant(float scale, float zq_, float lo, float hi, float grid_lo)
      : inv(_mm512_set1_ps(quant_inv(scale))), tlo(_mm512_set1_ps(lo - zq_)), thi(_mm512_set1_ps(hi - zq_)),
        off(_mm512_set1_epi32(static_cast<int32_t>(zq_ - grid_lo))) {}

  // Codes of the 16 lanes of v (masked-off lanes: don't care).
  __m128i operator()(__m512 v) const { return _mm512_cvtepi32_epi8(codes32(v)); }

  // The same as int32 lanes (0..255). maxps returns its second operand for a NaN: code(lo).
  __m512i codes32(__m512 v) const {
    const __m512 t = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v, inv), tlo), thi);
    return _mm512_add_epi32(_mm512_cvt_roundps_epi32(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), off);
  }
};

// 64 codes (four vectors of int32 in 0..255, in order) as 64 bytes: two saturating packs and one
// dword permutation (a NaN's INT_MIN saturates to 0, the same byte truncation gives).
inline __m512i pack64(__m512i a, __m512i b, __m512i c, __m512i d) {
  const __m512i w = _mm512_packus_epi16(_mm512_packs_epi32(a, b), _mm512_packs_epi32(c, d));
  const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_epi32(idx, w);
}

inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
}

}  // namespace mixq::kernels::avx512
