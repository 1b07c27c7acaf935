// AVX-512 requantization of 16 floats at a time, bit-identical to quantize_u8's reference
// (quantize_impl.h explains the multiply-then-divide-near-ties scheme). Included only by files
// compiled with the AVX-512 flags.
//
// Differences from the scalar code that cannot change a code:
//   - vrndscaleps rounds half to even at every magnitude, where round_half_even() first clamps
//     |t| to 2^22: beyond that both saturate in the final clamp;
//   - min/max for the final clamp: a NaN becomes lo (code 0), where the scalar cast of NaN - lo
//     gives INT_MIN, whose low byte is also 0;
//   - when the grid spans at most 256 codes and contains the zero point, any |t| >= 257 saturates
//     whichever way it rounds, so "near a tie" can use a fixed distance (2^-10) instead of one
//     relative to |t|: 2 ulp of |t| < 512 is at most 2^-13.
#pragma once

#include <immintrin.h>

namespace mixq::kernels::avx512 {

inline __m512 round_even16(__m512 t) { return _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }

struct Requant {
  __m512 qs, inv, zq, ql, qh, base;
  bool narrow;  // the fixed-distance test applies (see above)
  Requant(float scale, float zq_, float lo, float hi) : Requant(scale, zq_, lo, hi, lo) {}
  // Codes clamped to [lo, hi] inside the grid whose code 0 is `grid_lo` (lo >= grid_lo; a fused
  // clamp narrows [lo, hi], epilogue_avx512.cpp).
  Requant(float scale, float zq_, float lo, float hi, float grid_lo)
      : qs(_mm512_set1_ps(scale)), inv(_mm512_set1_ps(1.0f / scale)), zq(_mm512_set1_ps(zq_)),
        ql(_mm512_set1_ps(lo)), qh(_mm512_set1_ps(hi)), base(_mm512_set1_ps(grid_lo)),
        narrow(hi - grid_lo <= 255.0f && zq_ >= grid_lo && zq_ <= grid_lo + 255.0f) {}

  // Codes of the lanes of v selected by k (other lanes: don't care).
  __m128i operator()(__m512 v, __mmask16 k) const { return _mm512_cvtepi32_epi8(codes32(v, k)); }

  // The same as int32 lanes (0..255).
  __m512i codes32(__m512 v, __mmask16 k) const {
    const __m512 t = _mm512_mul_ps(v, inv);
    __m512 r = round_even16(t);
    const __m512 dist = _mm512_abs_ps(_mm512_sub_ps(t, r));  // distance to the integer; 0.5 at a tie
    const __m512 lim = narrow ? _mm512_set1_ps(0.5f - 1.0f / 1024)
                              : _mm512_sub_ps(_mm512_set1_ps(0.5f),
                                              _mm512_mul_ps(_mm512_set1_ps(1.0f / (1 << 19)), _mm512_abs_ps(t)));
    const __mmask16 far = _mm512_cmp_ps_mask(dist, lim, _CMP_LT_OQ);  // NaN: not far
    if (static_cast<__mmask16>(~far & k)) r = round_even16(_mm512_div_ps(v, qs));
    const __m512 c = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(r, zq), ql), qh);
    return _mm512_cvttps_epi32(_mm512_sub_ps(c, base));
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
