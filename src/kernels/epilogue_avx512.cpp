// epilogue_f32 / epilogue_u8 and row_sums_u8 for AVX-512, by hand (see epilogue.h; called only
// when the CPU has it): per row, 16 channels per step with a masked tail; the same integer and
// float operations in the same order as the reference, the requantization through
// requant_avx512.h.
#include <immintrin.h>

#include "kernels/epilogue.h"
#include "kernels/quantize.h"
#include "kernels/requant_avx512.h"

namespace mixq::kernels {

namespace {

// The epilogue's parameters as locals (stores through uint8_t* may alias the EpiRows, so reading
// its fields inside the loops would reload them after every store).
struct Rows {
  const int32_t *acc, *off, *zw, *rsum;
  const float *scale, *bias, *sum;
  int64_t lda, lds;
  __m512 lo, hi, plo, phi;
  bool clamp_last = true;  // false: the last clamp (act, or post after a sum) is left to the codes
  explicit Rows(const EpiRows& e)
      : acc(e.acc), off(e.off), zw(e.zw), rsum(e.rsum), scale(e.scale), bias(e.bias), sum(e.sum), lda(e.lda),
        lds(e.lds), lo(_mm512_set1_ps(e.act.lo)), hi(_mm512_set1_ps(e.act.hi)), plo(_mm512_set1_ps(e.post.lo)),
        phi(_mm512_set1_ps(e.post.hi)) {}

  // Channels [j, j + 16) of row i (lanes k): corrected sums, rescaled, clamped as the reference.
  __m512 values16(int64_t i, int64_t j, __mmask16 k) const {
    if (!clamp_last && !sum) return scaled16(i, j, k);
    __m512i s = _mm512_maskz_loadu_epi32(k, acc + i * lda + j);
    if (off) s = _mm512_add_epi32(s, _mm512_maskz_loadu_epi32(k, off + j));
    if (zw) s = _mm512_sub_epi32(s, _mm512_mullo_epi32(_mm512_maskz_loadu_epi32(k, zw + j), _mm512_set1_epi32(rsum[i])));
    __m512 v = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, scale + j), _mm512_cvtepi32_ps(s)),
                             _mm512_maskz_loadu_ps(k, bias + j));
    v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, lo, _CMP_GT_OQ), lo, v);  // v > lo ? v : lo
    v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, hi, _CMP_LT_OQ), hi, v);   // v < hi ? v : hi
    if (!sum) return v;
    v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, sum + i * lds + j));
    if (!clamp_last) return v;
    v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, plo, _CMP_GT_OQ), plo, v);
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, phi, _CMP_LT_OQ), phi, v);
  }

  // The rescaled sums without any clamp.
  __m512 scaled16(int64_t i, int64_t j, __mmask16 k) const {
    __m512i s = _mm512_maskz_loadu_epi32(k, acc + i * lda + j);
    if (off) s = _mm512_add_epi32(s, _mm512_maskz_loadu_epi32(k, off + j));
    if (zw) s = _mm512_sub_epi32(s, _mm512_mullo_epi32(_mm512_maskz_loadu_epi32(k, zw + j), _mm512_set1_epi32(rsum[i])));
    return _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, scale + j), _mm512_cvtepi32_ps(s)),
                         _mm512_maskz_loadu_ps(k, bias + j));
  }
};

// The code grid bound of a clamp bound b: clamp(round_half_even(b / scale) + zq, lo, hi), as the
// reference quantizes (quantize.h).
float code_bound(float b, const OutQuant& q) {
  const float c = round_half_even(b / q.scale) + q.zq;
  return c < q.lo ? q.lo : (c > q.hi ? q.hi : c);
}

constexpr __mmask16 kAll = static_cast<__mmask16>(0xFFFF);

}  // namespace

void epilogue_f32_avx512(const EpiRows& e, float* y, int64_t ldy) {
  const Rows r(e);
  const int64_t m = e.m, n = e.n;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 k = avx512::tail_mask(n - j);
      _mm512_mask_storeu_ps(y + i * ldy + j, k, r.values16(i, j, k));
    }
}

void epilogue_u8_avx512(const EpiRows& e, const OutQuant& q, uint8_t* y, int64_t ldy) {
  // The last clamp before quantization commutes with it (rounding v / scale is monotonic), so it is
  // applied to the codes instead: code(clamp(v, a, b)) = clamp(code(v), code(a), code(b)); a NaN
  // becomes code(a) either way (the Relu form v > a ? v : a, and maxps returning its second
  // operand).
  Rows r(e);
  r.clamp_last = false;
  const ActClamp last = e.sum ? e.post : e.act;
  const int64_t m = e.m, n = e.n;
  const avx512::Requant rq(q.scale, q.zq, code_bound(last.lo, q), code_bound(last.hi, q), q.lo);
  for (int64_t i = 0; i < m; ++i) {
    uint8_t* yr = y + i * ldy;
    int64_t j = 0;
    for (; j + 64 <= n; j += 64)  // whole cache lines of codes: packed, one plain store
      _mm512_storeu_si512(yr + j, avx512::pack64(rq.codes32(r.values16(i, j, kAll), kAll),
                                                 rq.codes32(r.values16(i, j + 16, kAll), kAll),
                                                 rq.codes32(r.values16(i, j + 32, kAll), kAll),
                                                 rq.codes32(r.values16(i, j + 48, kAll), kAll)));
    for (; j < n; j += 16) {
      const __mmask16 k = avx512::tail_mask(n - j);
      const __m128i c = rq(r.values16(i, j, k), k);
      if (k == kAll) _mm_storeu_si128(reinterpret_cast<__m128i*>(yr + j), c);
      else _mm_mask_storeu_epi8(yr + j, k, c);
    }
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
