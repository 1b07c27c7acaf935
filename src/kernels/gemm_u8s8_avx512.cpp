// AVX-512 VNNI path of gemm_u8s8 (compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vnni;
// called only when the CPU has them). Tile: 4 rows x 16 columns (one B panel), vpdpbusd with the
// A bytes broadcast: each instruction does 16 columns x 4 k.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/gemm_u8s8.h"

namespace mixq::kernels {

namespace {

inline int32_t load4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

template <int R>
void tile(const uint8_t* A, int64_t lda, const int8_t* panel, int64_t k4, int32_t* C, int64_t ldc, __mmask16 mask) {
  __m512i acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_si512();
  for (int64_t q = 0; q < k4; ++q) {
    const __m512i b = _mm512_loadu_si512(panel + q * 64);
    for (int r = 0; r < R; ++r) acc[r] = _mm512_dpbusd_epi32(acc[r], _mm512_set1_epi32(load4(A + r * lda + 4 * q)), b);
  }
  for (int r = 0; r < R; ++r) _mm512_mask_storeu_epi32(C + r * ldc, mask, acc[r]);
}

// The implicit form: R rows, their segment pointers resolved per tap.
template <int R>
void tile_indirect(const IndirectA& a, int64_t i0, const int8_t* panel, int32_t* C, int64_t ldc, __mmask16 mask) {
  __m512i acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_si512();
  const int64_t s4 = a.seg / 4;
  for (int64_t t = 0; t < a.taps; ++t) {
    const uint8_t* src[R];
    for (int r = 0; r < R; ++r) {
      const int32_t px = a.pix[(i0 + r) * a.taps + t];
      src[r] = px < 0 ? a.pad : a.base + px * a.stride;
    }
    const int8_t* pb = panel + t * s4 * 64;
    for (int64_t q = 0; q < s4; ++q) {
      const __m512i b = _mm512_loadu_si512(pb + q * 64);
      for (int r = 0; r < R; ++r) acc[r] = _mm512_dpbusd_epi32(acc[r], _mm512_set1_epi32(load4(src[r] + 4 * q)), b);
    }
  }
  for (int r = 0; r < R; ++r) _mm512_mask_storeu_epi32(C + (i0 + r) * ldc, mask, acc[r]);
}

}  // namespace

void gemm_u8s8_indirect_avx512(const IndirectA& a, int64_t m0, int64_t m1, const PackedB& B, int32_t* C,
                               int64_t ldc) {
  const int64_t k4 = B.kp / 4, panels = (B.n + 15) / 16;
  for (int64_t pn = 0; pn < panels; ++pn) {
    const int8_t* panel = B.b8.data() + pn * k4 * 64;
    const int64_t cols = std::min<int64_t>(16, B.n - pn * 16);
    const __mmask16 mask = static_cast<__mmask16>((1u << cols) - 1u);
    int64_t i = m0;
    for (; i + 4 <= m1; i += 4) tile_indirect<4>(a, i, panel, C + pn * 16, ldc, mask);
    for (; i < m1; ++i) tile_indirect<1>(a, i, panel, C + pn * 16, ldc, mask);
  }
}

void gemm_u8s8_avx512(const uint8_t* A, int64_t lda, int64_t m0, int64_t m1, const PackedB& B, int32_t* C,
                      int64_t ldc) {
  const int64_t k4 = B.kp / 4, panels = (B.n + 15) / 16;
  for (int64_t pn = 0; pn < panels; ++pn) {
    const int8_t* panel = B.b8.data() + pn * k4 * 64;
    const int64_t cols = std::min<int64_t>(16, B.n - pn * 16);
    const __mmask16 mask = static_cast<__mmask16>((1u << cols) - 1u);
    int64_t i = m0;
    for (; i + 4 <= m1; i += 4) tile<4>(A + i * lda, lda, panel, k4, C + i * ldc + pn * 16, ldc, mask);
    for (; i < m1; ++i) tile<1>(A + i * lda, lda, panel, k4, C + i * ldc + pn * 16, ldc, mask);
  }
}

}  // namespace mixq::kernels

namespace mixq::kernels {

int32_t vnni_peak_loop(int64_t iters) {
  __m512i acc[8];
  for (int r = 0; r < 8; ++r) acc[r] = _mm512_set1_epi32(r);
  const __m512i a = _mm512_set1_epi32(0x01010101), b = _mm512_set1_epi32(0x02020202);
  for (int64_t i = 0; i < iters; ++i)
    for (int r = 0; r < 8; ++r) acc[r] = _mm512_dpbusd_epi32(acc[r], a, b);
  __m512i s = acc[0];
  for (int r = 1; r < 8; ++r) s = _mm512_add_epi32(s, acc[r]);
  return _mm512_reduce_add_epi32(s);
}

}  // namespace mixq::kernels
