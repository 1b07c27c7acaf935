// depthwise_u8_acc_row for avx2: the fast body compiled for it, and the tap-pair kernel (see
// depthwise_u8.h; called only when the CPU has AVX2).
#include <immintrin.h>

#include "kernels/depthwise_u8_impl.h"

namespace mixq::kernels {

void depthwise_u8_acc_row_avx2(const uint8_t* a, int32_t za, const int16_t* w, const DepthwiseShape& s,
                               int64_t oy, int32_t* acc) {
  depthwise_u8_acc_body(a, za, w, s, oy, acc);
}

namespace {

// One output pixel: 8-channel blocks summed in registers over the tap pairs, as sum a * w - za *
// sum w (`nz`: -za * sum_t w per channel). Each pair's codes are interleaved (tap 2p, tap 2p + 1 per
// channel), widened to int16 and multiplied with the interleaved weights by one vpmaddwd: exact
// int32 (|a w| <= 255 * 255, two per lane). The compiler-vectorised body instead adds every tap
// into an [OW][C] int32 row in memory with 32-bit multiplies. Channels past the last full block of 8
// are summed in scalar code.
inline void dw_pixel(const uint8_t* const* src, int64_t pairs, int64_t C, const int32_t* nz, const int16_t* w2,
                     int32_t* out) {
  int64_t c0 = 0;
  for (; c0 + 8 <= C; c0 += 8) {
    // Two accumulators: consecutive adds into one register would wait out vpmaddwd's latency.
    __m256i sum[2] = {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(nz + c0)), _mm256_setzero_si256()};
    for (int64_t p = 0; p < pairs; ++p) {
      const __m128i x0 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(src[2 * p] + c0));
      const __m128i x1 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(src[2 * p + 1] + c0));
      const __m256i x = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(x0, x1));
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w2 + (p * C + c0) * 2));
      sum[p & 1] = _mm256_add_epi32(sum[p & 1], _mm256_madd_epi16(x, wv));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + c0), _mm256_add_epi32(sum[0], sum[1]));
  }
  for (; c0 < C; ++c0) {
    int32_t v = nz[c0];
    for (int64_t p = 0; p < pairs; ++p)
      v += int32_t(src[2 * p][c0]) * w2[(p * C + c0) * 2] + int32_t(src[2 * p + 1][c0]) * w2[(p * C + c0) * 2 + 1];
    out[c0] = v;
  }
}

}  // namespace

void depthwise_u8_acc_row_pairs_avx2(const uint8_t* a, const int32_t* nz, const int16_t* w2, const uint8_t* zrow,
                                     const DepthwiseShape& s, int64_t oy, int32_t* acc) {
  const int64_t C = s.C, pairs = (s.KH * s.KW + 1) / 2;
  depthwise_pairs_row(a, zrow, s, oy, acc,
                      [&](const uint8_t* const* src, int32_t* out) { dw_pixel(src, pairs, C, nz, w2, out); });
}

}  // namespace mixq::kernels
