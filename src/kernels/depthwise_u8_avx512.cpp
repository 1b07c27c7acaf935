// depthwise_u8_acc_row for avx512: the fast body compiled for it, and the tap-pair kernel (see
// depthwise_u8.h; called only when the CPU has AVX-512).
#include <immintrin.h>

#include "kernels/depthwise_u8_impl.h"

namespace mixq::kernels {

void depthwise_u8_acc_row_avx512(const uint8_t* a, int32_t za, const int16_t* w, const DepthwiseShape& s,
                                 int64_t oy, int32_t* acc) {
  depthwise_u8_acc_body(a, za, w, s, oy, acc);
}


namespace {

// One output pixel: 16-channel blocks summed over the tap pairs whose rows start at src[t], as
// sum a * w - za * sum w: `nz` holds -za * sum_t w per channel (zero-point term hoisted out of the
// pixel loop), and vpdpwssd multiplies and accumulates each pair of int16 products in one step.
inline void dw_pixel(const uint8_t* const* src, int64_t pairs, int64_t C, const int32_t* nz, const int16_t* w2,
                     int32_t* out) {
  for (int64_t c0 = 0; c0 < C; c0 += 16) {
    const __mmask16 k = C - c0 >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (C - c0)) - 1u);
    // Two accumulators: consecutive vpdpwssd on one register would wait out its latency each time.
    __m512i sum[2] = {_mm512_maskz_loadu_epi32(k, nz + c0), _mm512_setzero_si512()};
    for (int64_t p = 0; p < pairs; ++p) {
      const __m128i x0 = _mm_maskz_loadu_epi8(k, src[2 * p] + c0), x1 = _mm_maskz_loadu_epi8(k, src[2 * p + 1] + c0);
      const __m256i x = _mm256_set_m128i(_mm_unpackhi_epi8(x0, x1), _mm_unpacklo_epi8(x0, x1));
      sum[p & 1] = _mm512_dpwssd_epi32(sum[p & 1], _mm512_cvtepu8_epi16(x),
                                       _mm512_maskz_loadu_epi32(k, w2 + (p * C + c0) * 2));
    }
    _mm512_mask_storeu_epi32(out + c0, k, _mm512_add_epi32(sum[0], sum[1]));
  }
}

}  // namespace

void depthwise_u8_acc_row_pairs_avx512(const uint8_t* a, const int32_t* nz, const int16_t* w2, const uint8_t* zrow,
                                       const DepthwiseShape& s, int64_t oy, int32_t* acc) {
  const int64_t C = s.C, pairs = (s.KH * s.KW + 1) / 2;
  depthwise_pairs_row(a, zrow, s, oy, acc,
                      [&](const uint8_t* const* src, int32_t* out) { dw_pixel(src, pairs, C, nz, w2, out); });
}

}  // namespace mixq::kernels
