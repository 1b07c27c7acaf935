// AVX-512 requantization of 16 floats at a time, bit-identical to quantize_u8's reference
// (quantize_impl.h explains the multiply-then-divide-near-ties scheme). Included only by files
// compiled with the AVX-512 flags.
#pragma once

#include <immintrin.h>

namespace mixq::kernels::avx512 {

// round_half_even() of quantize.h, lane by lane: clamp to +-2^22 (NaN passes), add and subtract
// 1.5 * 2^23.
inline __m512 round_half_even16(__m512 t) {
  const __m512 lim = _mm512_set1_ps(4194304.0f), nlim = _mm512_set1_ps(-4194304.0f),
               magic = _mm512_set1_ps(12582912.0f);
  t = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(t, nlim, _CMP_LT_OQ), t, nlim);
  t = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(t, lim, _CMP_GT_OQ), t, lim);
  return _mm512_sub_ps(_mm512_add_ps(t, magic), magic);
}

struct Requant {
  __m512 qs, inv, zq, ql, qh;
  Requant(float scale, float zq_, float lo, float hi)
      : qs(_mm512_set1_ps(scale)), inv(_mm512_set1_ps(1.0f / scale)), zq(_mm512_set1_ps(zq_)),
        ql(_mm512_set1_ps(lo)), qh(_mm512_set1_ps(hi)) {}

  // Codes of the lanes of v selected by k (other lanes: don't care).
  __m128i operator()(__m512 v, __mmask16 k) const {
    const __m512 t = _mm512_mul_ps(v, inv);
    __m512 r = round_half_even16(t);
    const __m512 d = _mm512_abs_ps(_mm512_sub_ps(_mm512_abs_ps(_mm512_sub_ps(t, r)), _mm512_set1_ps(0.5f)));
    const __mmask16 far = _mm512_cmp_ps_mask(d, _mm512_mul_ps(_mm512_set1_ps(1.0f / (1 << 19)), _mm512_abs_ps(t)),
                                             _CMP_GT_OQ);
    if (static_cast<__mmask16>(~far & k)) r = round_half_even16(_mm512_div_ps(v, qs));
    __m512 c = _mm512_add_ps(r, zq);
    c = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(c, qh, _CMP_GT_OQ), c, qh);
    c = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(c, ql, _CMP_LT_OQ), c, ql);
    return _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(_mm512_sub_ps(c, ql)));  // truncating, as static_cast
  }
};

inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
}

}  // namespace mixq::kernels::avx512
