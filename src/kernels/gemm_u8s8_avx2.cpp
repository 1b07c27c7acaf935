// AVX2 path of gemm_u8s8 (compiled with -mavx2 -mfma). vpmaddubsw would saturate (255*127*2 >
// 32767), so A pairs are widened to int16 and multiplied with vpmaddwd against B panels stored as
// int16 pairs: exact int32 results. Tile: 4 rows x 8 columns, 2 k per instruction.
#include <immintrin.h>

#include <algorithm>

#include "kernels/gemm_u8s8.h"

namespace mixq::kernels {

namespace {

template <int R>
void tile(const uint8_t* A, int64_t lda, const int16_t* panel, int64_t k2, int32_t* C, int64_t ldc, int64_t cols) {
  __m256i acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_si256();
  for (int64_t q = 0; q < k2; ++q) {
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + q * 16));
    for (int r = 0; r < R; ++r) {
      const uint8_t* a = A + r * lda + 2 * q;
      const int32_t pair = int32_t(a[0]) | (int32_t(a[1]) << 16);
      acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(_mm256_set1_epi32(pair), b));
    }
  }
  for (int r = 0; r < R; ++r) {
    if (cols == 8) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(C + r * ldc), acc[r]);
    } else {
      alignas(32) int32_t tmp[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), acc[r]);
      std::copy(tmp, tmp + cols, C + r * ldc);
    }
  }
}

}  // namespace

void gemm_u8s8_avx2(const uint8_t* A, int64_t lda, int64_t m0, int64_t m1, const PackedB& B, int32_t* C,
                    int64_t ldc) {
  const int64_t k2 = B.kp / 2, panels = (B.n + 7) / 8;
  for (int64_t pn = 0; pn < panels; ++pn) {
    const int16_t* panel = B.b16.data() + pn * k2 * 16;
    const int64_t cols = std::min<int64_t>(8, B.n - pn * 8);
    int64_t i = m0;
    for (; i + 4 <= m1; i += 4) tile<4>(A + i * lda, lda, panel, k2, C + i * ldc + pn * 8, ldc, cols);
    for (; i < m1; ++i) tile<1>(A + i * lda, lda, panel, k2, C + i * ldc + pn * 8, ldc, cols);
  }
}

}  // namespace mixq::kernels
