// epilogue_f32 / epilogue_u8 and row_sums_u8 for AVX-512, by hand (see epilogue.h; called only
// when the CPU has it): per row, 16 channels per step with a masked tail; the arithmetic is
// epilogue_avx512.h's, the requantization requant_avx512.h's.
#include <immintrin.h>

#include "kernels/epilogue.h"
#include "kernels/epilogue_avx512.h"
#include "kernels/requant_avx512.h"

namespace mixq::kernels {

void epilogue_f32_avx512(const EpiRows& e, float* y, int64_t ldy) {
  const avx512::EpiVec r(e);
  const int64_t m = e.m, n = e.n;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 k = avx512::tail_mask(n - j);
      _mm512_mask_storeu_ps(y + i * ldy + j, k, r.values16(i, j, k));
    }
}

void epilogue_u8_avx512(const EpiRows& e, const OutQuant& q, uint8_t* y, int64_t ldy) {
  avx512::EpiVec r(e);
  const avx512::Requant rq = avx512::u8_requant(e, q, r);  // (the last clamp on the codes)
  const int64_t m = e.m, n = e.n;
  for (int64_t i = 0; i < m; ++i) {
    uint8_t* yr = y + i * ldy;
    int64_t j = 0;
    for (; j + 64 <= n; j += 64)  // whole cache lines of codes: packed, one plain store
      _mm512_storeu_si512(yr + j, avx512::pack64(rq.codes32(r.values16(i, j, avx512::kAll16)),
                                                 rq.codes32(r.values16(i, j + 16, avx512::kAll16)),
                                                 rq.codes32(r.values16(i, j + 32, avx512::kAll16)),
                                                 rq.codes32(r.values16(i, j + 48, avx512::kAll16))));
    for (; j < n; j += 16) {
      const __mmask16 k = avx512::tail_mask(n - j);
      const __m128i c = rq(r.values16(i, j, k));
      if (k == avx512::kAll16) _mm_storeu_si128(reinterpret_cast<__m128i*>(yr + j), c);
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
