// epilogue_f32 / epilogue_u8 and row_sums_u8 for AVX-512, by hand (see epilogue.h; called only
// when the CPU has it): per row, 16 channels per step with a masked tail; the same integer and
// float operations in the same order as the reference, the requantization through
// requant_avx512.h.
#include <immintrin.h>

#include "kernels/epilogue.h"
#include "kernels/requant_avx512.h"

namespace mixq::kernels {

namespace {

// Channels [j, j + 16) of row i (lanes k): corrected sums, rescaled, clamped as the reference does.
inline __m512 values16(const EpiRows& e, int64_t i, int64_t j, __m512 lo, __m512 hi, __mmask16 k) {
  __m512i s = _mm512_maskz_loadu_epi32(k, e.acc + i * e.lda + j);
  if (e.off) s = _mm512_add_epi32(s, _mm512_maskz_loadu_epi32(k, e.off + j));
  if (e.zw)
    s = _mm512_sub_epi32(s, _mm512_mullo_epi32(_mm512_maskz_loadu_epi32(k, e.zw + j), _mm512_set1_epi32(e.rsum[i])));
  __m512 v = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, e.scale + j), _mm512_cvtepi32_ps(s)),
                           _mm512_maskz_loadu_ps(k, e.bias + j));
  v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, lo, _CMP_GT_OQ), lo, v);  // v > lo ? v : lo
  v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, hi, _CMP_LT_OQ), hi, v);   // v < hi ? v : hi
  if (!e.sum) return v;
  const __m512 plo = _mm512_set1_ps(e.post.lo), phi = _mm512_set1_ps(e.post.hi);
  v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, e.sum + i * e.lds + j));
  v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, plo, _CMP_GT_OQ), plo, v);
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, phi, _CMP_LT_OQ), phi, v);
}

}  // namespace

void epilogue_f32_avx512(const EpiRows& e, float* y, int64_t ldy) {
  const __m512 lo = _mm512_set1_ps(e.act.lo), hi = _mm512_set1_ps(e.act.hi);
  for (int64_t i = 0; i < e.m; ++i)
    for (int64_t j = 0; j < e.n; j += 16) {
      const __mmask16 k = avx512::tail_mask(e.n - j);
      _mm512_mask_storeu_ps(y + i * ldy + j, k, values16(e, i, j, lo, hi, k));
    }
}

void epilogue_u8_avx512(const EpiRows& e, const OutQuant& q, uint8_t* y, int64_t ldy) {
  const __m512 lo = _mm512_set1_ps(e.act.lo), hi = _mm512_set1_ps(e.act.hi);
  const avx512::Requant rq(q.scale, q.zq, q.lo, q.hi);
  for (int64_t i = 0; i < e.m; ++i)
    for (int64_t j = 0; j < e.n; j += 16) {
      const __mmask16 k = avx512::tail_mask(e.n - j);
      _mm_mask_storeu_epi8(y + i * ldy + j, k, rq(values16(e, i, j, lo, hi, k), k));
    }
}

void row_sums_u8_avx512(const uint8_t* a, int64_t m, int64_t k, int64_t lda, int32_t* out) {
  for (int64_t i = 0; i < m; ++i) {
    const uint8_t* r = a + i * lda;
    __m512i s = _mm512_setzero_si512();
    for (int64_t q = 0; q < k; q += 64) {
      const int64_t left = k - q;
      const __mmask64 mk = left >= 64 ? ~__mmask64(0) : ((__mmask64(1) << left) - 1);
      s = _mm512_add_epi64(s, _mm512_sad_epu8(_mm512_maskz_loadu_epi8(mk, r + q), _mm512_setzero_si512()));
    }
    out[i] = static_cast<int32_t>(_mm512_reduce_add_epi64(s));
  }
}

}  // namespace mixq::kernels
