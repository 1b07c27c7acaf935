// The epilogue's arithmetic on 16 channels of one row held in a register, for the AVX-512 files
// (compiled with the AVX-512 flags): epilogue_avx512.cpp runs it on stored int32 sums,
// gemm_epi_avx512.cpp on a GEMM tile's accumulators before they ever reach memory. The same
// integer and float operations in the same order as the reference (epilogue_impl.h).
#pragma once

#include <immintrin.h>

#include "kernels/epilogue.h"
#include "kernels/quantize.h"
#include "kernels/requant_avx512.h"

namespace mixq::kernels::avx512 {

// The epilogue's parameters as locals (stores through uint8_t* may alias the EpiRows, so reading
// its fields inside the loops would reload them after every store).
struct EpiVec {
  const int32_t *acc, *off, *zw, *rsum;
  const float *scale, *bias, *sum;
  int64_t lda, lds;
  __m512 lo, hi, plo, phi;
  bool clamp_last = true;  // false: the last clamp (act, or post after a sum) is left to the codes
  explicit EpiVec(const EpiRows& e)
      : acc(e.acc), off(e.off), zw(e.zw), rsum(e.rsum), scale(e.scale), bias(e.bias), sum(e.sum), lda(e.lda),
        lds(e.lds), lo(_mm512_set1_ps(e.act.lo)), hi(_mm512_set1_ps(e.act.hi)), plo(_mm512_set1_ps(e.post.lo)),
        phi(_mm512_set1_ps(e.post.hi)) {}

  // Channels [j, j + 16) of row i (lanes k) from their sums s: corrected, rescaled, clamped as the
  // reference.
  __m512 finish16(__m512i s, int64_t i, int64_t j, __mmask16 k) const {
    if (off) s = _mm512_add_epi32(s, _mm512_maskz_loadu_epi32(k, off + j));
    if (zw) s = _mm512_sub_epi32(s, _mm512_mullo_epi32(_mm512_maskz_loadu_epi32(k, zw + j), _mm512_set1_epi32(rsum[i])));
    __m512 v = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, scale + j), _mm512_cvtepi32_ps(s)),
                             _mm512_maskz_loadu_ps(k, bias + j));
    if (!clamp_last && !sum) return v;
    v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, lo, _CMP_GT_OQ), lo, v);  // v > lo ? v : lo
    v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, hi, _CMP_LT_OQ), hi, v);   // v < hi ? v : hi
    if (!sum) return v;
    v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, sum + i * lds + j));
    if (!clamp_last) return v;
    v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, plo, _CMP_GT_OQ), plo, v);
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, phi, _CMP_LT_OQ), phi, v);
  }

  // The same from the stored sums acc[i][j..].
  __m512 values16(int64_t i, int64_t j, __mmask16 k) const {
    return finish16(_mm512_maskz_loadu_epi32(k, acc + i * lda + j), i, j, k);
  }
};

// The code grid bound of a clamp bound b: clamp(round_half_even(b * inv) + zq, lo, hi), as the
// reference quantizes (quantize.h).
inline float code_bound(float b, const OutQuant& q) {
  const float c = round_half_even(b * quant_inv(q.scale)) + q.zq;
  return c < q.lo ? q.lo : (c > q.hi ? q.hi : c);
}

// The u8 epilogue's requantizer. The last clamp before quantization commutes with it (rounding
// v * inv is monotonic), so it is applied to the codes instead: code(clamp(v, a, b)) =
// clamp(code(v), code(a), code(b)); a NaN becomes code(a) either way (the Relu form v > a ? v : a,
// and maxps returning its second operand). Sets ev.clamp_last = false to match.
inline Requant u8_requant(const EpiRows& e, const OutQuant& q, EpiVec& ev) {
  ev.clamp_last = false;
  const ActClamp last = e.sum ? e.post : e.act;
  return Requant(q.scale, q.zq, code_bound(last.lo, q), code_bound(last.hi, q), q.lo);
}

constexpr __mmask16 kAll16 = static_cast<__mmask16>(0xFFFF);

}  // namespace mixq::kernels::avx512
