// AVX2 path of gemm_u8s8 (compiled with -mavx2 -mfma). vpmaddubsw would saturate (255*127*2 >
// 32767), so A pairs are widened to int16 and multiplied with vpmaddwd against B panels stored as
// int16 pairs: exact int32 results.
//
// Main tile: 6 rows x 16 columns (two adjacent 8-column panels), 12 accumulators, so that each
// vpmaddwd's latency is hidden behind eleven others and every B load serves six rows. The rows are
// widened to int16 once per 6-row block (into a per-thread buffer) and each pair of codes is one
// broadcast load, instead of being assembled from two bytes per row and step. Columns are taken in
// chunks whose B panels fit in L2 (~256 KiB), so a chunk is read from cache by every row block.
// Columns left over (an odd last panel, a partial one) take the 4 x 8 tile.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

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

// R rows (int16, row stride kp) x 16 columns (panels p0 and p1, 8 columns each, full).
template <int R>
void tile16(const int16_t* a16, int64_t kp, const int16_t* p0, const int16_t* p1, int64_t k2, int32_t* C,
            int64_t ldc) {
  __m256i acc0[R], acc1[R];
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm256_setzero_si256();
  for (int64_t q = 0; q < k2; ++q) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p0 + q * 16));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p1 + q * 16));
    for (int r = 0; r < R; ++r) {
      int32_t pair;
      std::memcpy(&pair, a16 + r * kp + 2 * q, sizeof pair);
      const __m256i a = _mm256_set1_epi32(pair);
      acc0[r] = _mm256_add_epi32(acc0[r], _mm256_madd_epi16(a, b0));
      acc1[r] = _mm256_add_epi32(acc1[r], _mm256_madd_epi16(a, b1));
    }
  }
  for (int r = 0; r < R; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(C + r * ldc), acc0[r]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(C + r * ldc + 8), acc1[r]);
  }
}

void tile16_rows(int rows, const int16_t* a16, int64_t kp, const int16_t* p0, const int16_t* p1, int64_t k2,
                 int32_t* C, int64_t ldc) {
  switch (rows) {
    case 6: tile16<6>(a16, kp, p0, p1, k2, C, ldc); break;
    case 5: tile16<5>(a16, kp, p0, p1, k2, C, ldc); break;
    case 4: tile16<4>(a16, kp, p0, p1, k2, C, ldc); break;
    case 3: tile16<3>(a16, kp, p0, p1, k2, C, ldc); break;
    case 2: tile16<2>(a16, kp, p0, p1, k2, C, ldc); break;
    default: tile16<1>(a16, kp, p0, p1, k2, C, ldc); break;
  }
}

// rows x kp codes (row stride lda, zero-padded to kp by the caller) -> int16, row stride kp.
void widen(const uint8_t* A, int64_t lda, int rows, int64_t kp, int16_t* out) {
  for (int r = 0; r < rows; ++r) {
    const uint8_t* s = A + r * lda;
    int16_t* d = out + r * kp;
    int64_t k = 0;
    for (; k + 16 <= kp; k += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + k),
                          _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + k))));
    for (; k < kp; ++k) d[k] = s[k];
  }
}

// Narrow weights (PackedB::narrow, all in [-64, 63]): R rows x the `cols` (<= 8) columns of one
// int8 panel, or x 16 columns of two (p1 != nullptr). Four codes of A are one broadcast load;
// vpmaddubsw sums them with the weights in int16 pairs (exact here), vpmaddwd by ones into int32:
// 64 multiply-adds per two panels in 2 + 2 instructions and no widening of A.
template <int R>
void tile_narrow(const uint8_t* A, int64_t lda, const int8_t* p0, const int8_t* p1, int64_t k4, int32_t* C,
                 int64_t ldc, int64_t cols) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc0[R], acc1[R];
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm256_setzero_si256();
  for (int64_t q = 0; q < k4; ++q) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p0 + q * 32));
    const __m256i b1 = p1 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p1 + q * 32)) : b0;
    for (int r = 0; r < R; ++r) {
      int32_t quad;
      std::memcpy(&quad, A + r * lda + 4 * q, sizeof quad);
      const __m256i a = _mm256_set1_epi32(quad);
      acc0[r] = _mm256_add_epi32(acc0[r], _mm256_madd_epi16(_mm256_maddubs_epi16(a, b0), ones));
      if (p1) acc1[r] = _mm256_add_epi32(acc1[r], _mm256_madd_epi16(_mm256_maddubs_epi16(a, b1), ones));
    }
  }
  for (int r = 0; r < R; ++r) {
    if (cols == 8 || p1) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(C + r * ldc), acc0[r]);
      if (p1) _mm256_storeu_si256(reinterpret_cast<__m256i*>(C + r * ldc + 8), acc1[r]);
    } else {
      alignas(32) int32_t tmp[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), acc0[r]);
      std::copy(tmp, tmp + cols, C + r * ldc);
    }
  }
}

void gemm_narrow(const uint8_t* A, int64_t lda, int64_t m0, int64_t m1, const PackedB& B, int32_t* C, int64_t ldc) {
  const int64_t k4 = B.kp / 4, panels = (B.n + 7) / 8, pairs = (B.n / 8) / 2, panel_bytes = k4 * 32;
  for (int64_t pr = 0; pr < pairs; ++pr) {  // two full panels at a time (B stays in L1 across rows)
    const int8_t* p0 = B.b8.data() + 2 * pr * panel_bytes;
    int64_t i = m0;
    for (; i + 4 <= m1; i += 4) tile_narrow<4>(A + i * lda, lda, p0, p0 + panel_bytes, k4, C + i * ldc + pr * 16, ldc, 8);
    for (; i < m1; ++i) tile_narrow<1>(A + i * lda, lda, p0, p0 + panel_bytes, k4, C + i * ldc + pr * 16, ldc, 8);
  }
  for (int64_t pn = 2 * pairs; pn < panels; ++pn) {
    const int8_t* p0 = B.b8.data() + pn * panel_bytes;
    const int64_t cols = std::min<int64_t>(8, B.n - pn * 8);
    int64_t i = m0;
    for (; i + 4 <= m1; i += 4) tile_narrow<4>(A + i * lda, lda, p0, nullptr, k4, C + i * ldc + pn * 8, ldc, cols);
    for (; i < m1; ++i) tile_narrow<1>(A + i * lda, lda, p0, nullptr, k4, C + i * ldc + pn * 8, ldc, cols);
  }
}

constexpr int kRows = 6;
constexpr int64_t kChunkBytes = int64_t{256} << 10;

}  // namespace

void gemm_u8s8_avx2(const uint8_t* A, int64_t lda, int64_t m0, int64_t m1, const PackedB& B, int32_t* C,
                    int64_t ldc) {
  if (B.narrow) {
    gemm_narrow(A, lda, m0, m1, B, C, ldc);
    return;
  }
  const int64_t kp = B.kp, k2 = kp / 2, panels = (B.n + 7) / 8, pairs = (B.n / 8) / 2;
  const int64_t panel_elems = k2 * 16;
  if (pairs > 0) {
    thread_local std::vector<int16_t> a16;
    if (static_cast<int64_t>(a16.size()) < kRows * kp) a16.resize(static_cast<size_t>(kRows * kp));
    const int64_t chunk = std::max<int64_t>(1, kChunkBytes / (2 * panel_elems * int64_t(sizeof(int16_t))));
    for (int64_t c0 = 0; c0 < pairs; c0 += chunk) {
      const int64_t c1 = std::min(pairs, c0 + chunk);
      for (int64_t i = m0; i < m1; i += kRows) {
        const int rows = static_cast<int>(std::min<int64_t>(kRows, m1 - i));
        widen(A + i * lda, lda, rows, kp, a16.data());
        for (int64_t pr = c0; pr < c1; ++pr) {
          const int16_t* p0 = B.b16.data() + 2 * pr * panel_elems;
          tile16_rows(rows, a16.data(), kp, p0, p0 + panel_elems, k2, C + i * ldc + pr * 16, ldc);
        }
      }
    }
  }
  for (int64_t pn = 2 * pairs; pn < panels; ++pn) {
    const int16_t* panel = B.b16.data() + pn * panel_elems;
    const int64_t cols = std::min<int64_t>(8, B.n - pn * 8);
    int64_t i = m0;
    for (; i + 4 <= m1; i += 4) tile<4>(A + i * lda, lda, panel, k2, C + i * ldc + pn * 8, ldc, cols);
    for (; i < m1; ++i) tile<1>(A + i * lda, lda, panel, k2, C + i * ldc + pn * 8, ldc, cols);
  }
}

}  // namespace mixq::kernels
