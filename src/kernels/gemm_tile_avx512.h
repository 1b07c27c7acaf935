// gemm_u8s8's AVX-512 VNNI register tiles, shared by the plain GEMM (int32 sums stored) and the
// GEMM with a fused epilogue (gemm_epi.h: codes or floats stored). Included only by files compiled
// with -mavx512f -mavx512bw -mavx512vl -mavx512vnni. Tile: R rows x NP panels of 16 columns,
// vpdpbusd with the A bytes broadcast: each instruction does 16 columns x 4 k; the finished
// accumulators go to a sink, sink.template put<R, NP>(acc, row, col, last), that decides what
// reaches memory.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "kernels/gemm_u8s8.h"

namespace mixq::kernels::avx512 {

inline int32_t load4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Rows [i, i + R) (A at row i) x panels from `panel`: each broadcast A word feeds NP vpdpbusd, so
// the loads per multiply-add fall as NP grows (up to 16 accumulators in registers).
template <int R, int NP, typename Sink>
inline void tile(const uint8_t* A, int64_t lda, const int8_t* panel, int64_t pstride, int64_t k4, int64_t i,
                 int64_t col, __mmask16 last, Sink& sink) {
  __m512i acc[R][NP];
  for (int r = 0; r < R; ++r)
    for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_setzero_si512();
  for (int64_t q = 0; q < k4; ++q) {
    __m512i b[NP];
    for (int p = 0; p < NP; ++p) b[p] = _mm512_loadu_si512(panel + p * pstride + q * 64);
    for (int r = 0; r < R; ++r) {
      const __m512i a = _mm512_set1_epi32(load4(A + r * lda + 4 * q));
      for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_dpbusd_epi32(acc[r][p], a, b[p]);
    }
  }
  sink.template put<R, NP>(acc, i, col, last);
}

// The implicit form: rows [i0, i0 + R), their segment pointers resolved once per tap for all NP
// panels.
template <int R, int NP, typename Sink>
inline void tile_indirect(const IndirectA& a, int64_t i0, const int8_t* panel, int64_t pstride, int64_t col,
                          __mmask16 last, Sink& sink) {
  __m512i acc[R][NP];
  for (int r = 0; r < R; ++r)
    for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_setzero_si512();
  const int64_t s4 = a.seg / 4;
  for (int64_t t = 0; t < a.taps; ++t) {
    const uint8_t* src[R];
    for (int r = 0; r < R; ++r) {
      const int32_t px = a.pix[(i0 + r) * a.taps + t];
      src[r] = px < 0 ? a.pad : a.base + px * a.stride;
    }
    const int8_t* pb = panel + t * s4 * 64;
    for (int64_t q = 0; q < s4; ++q) {
      __m512i b[NP];
      for (int p = 0; p < NP; ++p) b[p] = _mm512_loadu_si512(pb + p * pstride + q * 64);
      for (int r = 0; r < R; ++r) {
        const __m512i av = _mm512_set1_epi32(load4(src[r] + 4 * q));
        for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_dpbusd_epi32(acc[r][p], av, b[p]);
      }
    }
  }
  sink.template put<R, NP>(acc, i0, col, last);
}

// Calls f(R, NP, pn, i, last) for every tile: panels in groups of NP <= 4 from panel pn (the last
// group's last panel may be partial: mask `last`), rows [m0, m1) 8 at a time where NP <= 2, then 4
// at a time (R = 4), then single rows (R = 1); R and NP arrive as std::integral_constant, so the tiles are compiled per shape.
template <typename F>
inline void for_tiles(const PackedB& B, int64_t m0, int64_t m1, F f) {
  const int64_t panels = (B.n + 15) / 16;
  for (int64_t pn = 0; pn < panels; pn += 4) {
    const int np = static_cast<int>(std::min<int64_t>(4, panels - pn));
    const int64_t cols = std::min<int64_t>(16, B.n - (pn + np - 1) * 16);
    const __mmask16 last = static_cast<__mmask16>((1u << cols) - 1u);
    auto rows = [&](auto NP) {
      int64_t i = m0;
      // One or two panels (16-32 columns): 8 rows per tile, 8-16 accumulators. With 4 rows, 4-8
      // independent vpdpbusd chains left the unit waiting on their latency (a 16-channel layer ran
      // at a fifth of the VNNI peak).
      if constexpr (decltype(NP)::value <= 2)
        for (; i + 8 <= m1; i += 8) f(std::integral_constant<int, 8>{}, NP, pn, i, last);
      for (; i + 4 <= m1; i += 4) f(std::integral_constant<int, 4>{}, NP, pn, i, last);
      for (; i < m1; ++i) f(std::integral_constant<int, 1>{}, NP, pn, i, last);
    };
    switch (np) {
      case 1: rows(std::integral_constant<int, 1>{}); break;
      case 2: rows(std::integral_constant<int, 2>{}); break;
      case 3: rows(std::integral_constant<int, 3>{}); break;
      default: rows(std::integral_constant<int, 4>{}); break;
    }
  }
}

// Runs the plain or the implicit GEMM's tiles over rows [m0, m1) into `sink` (a null `a` selects
// the plain form on A / lda).
template <typename Sink>
inline void run_tiles(const uint8_t* A, int64_t lda, const IndirectA* a, int64_t m0, int64_t m1, const PackedB& B,
                      Sink& sink) {
  const int64_t k4 = B.kp / 4, ps = k4 * 64;
  for_tiles(B, m0, m1, [&](auto R, auto NP, int64_t pn, int64_t i, __mmask16 last) {
    constexpr int kR = decltype(R)::value, kNP = decltype(NP)::value;
    if (a) tile_indirect<kR, kNP>(*a, i, B.b8.data() + pn * ps, ps, pn * 16, last, sink);
    else tile<kR, kNP>(A + i * lda, lda, B.b8.data() + pn * ps, ps, k4, i, pn * 16, last, sink);
  });
}

}  // namespace mixq::kernels::avx512
