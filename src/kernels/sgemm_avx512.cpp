// sgemm rows for AVX-512, by hand: a register tile of 6 rows x 32 columns (12 accumulators; each
// broadcast A element feeds two column vectors), masked column tails. Every C element still sums
// its products in k order with a separate multiply and add (no FMA), so the result is bit-identical
// to the reference loop (sgemm_impl.h).
#include <immintrin.h>

#include "kernels/sgemm.h"

namespace mixq::kernels {

namespace {

template <int R>
void tile(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, int64_t k, bool accumulate,
          __mmask16 k0, __mmask16 k1) {
  __m512 acc[R][2];
  for (int r = 0; r < R; ++r) {
    acc[r][0] = accumulate ? _mm512_maskz_loadu_ps(k0, C + r * ldc) : _mm512_setzero_ps();
    acc[r][1] = accumulate ? _mm512_maskz_loadu_ps(k1, C + r * ldc + 16) : _mm512_setzero_ps();
  }
  for (int64_t q = 0; q < k; ++q) {
    const __m512 b0 = _mm512_maskz_loadu_ps(k0, B + q * ldb), b1 = _mm512_maskz_loadu_ps(k1, B + q * ldb + 16);
    for (int r = 0; r < R; ++r) {
      const __m512 a = _mm512_set1_ps(A[r * lda + q]);
      acc[r][0] = _mm512_add_ps(acc[r][0], _mm512_mul_ps(a, b0));
      acc[r][1] = _mm512_add_ps(acc[r][1], _mm512_mul_ps(a, b1));
    }
  }
  for (int r = 0; r < R; ++r) {
    _mm512_mask_storeu_ps(C + r * ldc, k0, acc[r][0]);
    _mm512_mask_storeu_ps(C + r * ldc + 16, k1, acc[r][1]);
  }
}

__mmask16 mask_of(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF)
                    : left <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << left) - 1u);
}

}  // namespace

void sgemm_rows_avx512(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, int64_t m0,
                       int64_t m1, int64_t n, int64_t k, bool accumulate) {
  for (int64_t j0 = 0; j0 < n; j0 += 32) {
    const __mmask16 k0 = mask_of(n - j0), k1 = mask_of(n - j0 - 16);
    int64_t i = m0;
    for (; i + 6 <= m1; i += 6) tile<6>(A + i * lda, lda, B + j0, ldb, C + i * ldc + j0, ldc, k, accumulate, k0, k1);
    for (; i < m1; ++i) tile<1>(A + i * lda, lda, B + j0, ldb, C + i * ldc + j0, ldc, k, accumulate, k0, k1);
  }
}

}  // namespace mixq::kernels
