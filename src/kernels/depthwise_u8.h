// Depthwise convolution (one filter per channel) on uint8 activation codes, channels-last: the
// exact sums of one output row, which the integer layers' fused epilogue (kernels/epilogue.h)
// rescales. No libtorch.
//
//   acc[ox][c] = sum over taps (ky, kx) inside the image of (a[iy][ix][c] - za) * w[ky*KW+kx][c]
//                (iy = oy*SH - PT + ky*DH, ix likewise)
// a: one image's codes [H][W][C] (channels-last); w: [KH*KW][C] int16, the weight code minus its
// zero point (|w| <= 255). Taps outside the image contribute nothing (the padding value is the
// code of 0.0, za). Sums are exact int32 (|a - za| * |w| * taps <= 255 * 255 * 64 < 2^31 for up to
// 64 taps), so every path gives the same sums.
//
// Paths: ref (plain loops with a bounds check per tap, the specification); the fast body runs
// tap by tap over the output row with the channel loop innermost (vectorised by the compiler for
// baseline x86-64, AVX2 and AVX-512: one file each); on AVX-512 the runtime uses the tap-pair
// kernel below.
#pragma once

#include <cstdint>

#include <vector>

#include "kernels/isa.h"

namespace mixq::kernels {

struct DepthwiseShape {
  int64_t C = 0, H = 0, W = 0, OH = 0, OW = 0;
  int64_t KH = 1, KW = 1, SH = 1, SW = 1, PT = 0, PL = 0, DH = 1, DW = 1;
};

// Output row oy's exact sums into acc [OW][C].
void depthwise_u8_acc_row(const uint8_t* a, int32_t za, const int16_t* w, const DepthwiseShape& s, int64_t oy,
                          int32_t* acc, Isa isa);
void depthwise_u8_acc_row_ref(const uint8_t* a, int32_t za, const int16_t* w, const DepthwiseShape& s, int64_t oy,
                              int32_t* acc);
void depthwise_u8_acc_row_base(const uint8_t* a, int32_t za, const int16_t* w, const DepthwiseShape& s, int64_t oy,
                               int32_t* acc);
void depthwise_u8_acc_row_avx2(const uint8_t* a, int32_t za, const int16_t* w, const DepthwiseShape& s, int64_t oy,
                               int32_t* acc);
void depthwise_u8_acc_row_avx512(const uint8_t* a, int32_t za, const int16_t* w, const DepthwiseShape& s,
                                 int64_t oy, int32_t* acc);
// AVX-512 form of depthwise_u8_acc_row with the taps taken two at a time by vpdpwssd (16-bit
// products of a and w summed in pairs into int32, exact), as sum a * w - za * sum w.
// w2 = interleave_tap_pairs(w, taps, C): [ceil(taps / 2)][C][2] int16, tap 2p then 2p + 1 (0 past
// the last tap); nz = tap_pair_zero_terms(w2, taps, C, za): -za * (channel c's weights summed),
// made once at load. `zrow`: C bytes of za, read for taps outside the image (they add 0).
std::vector<int16_t> interleave_tap_pairs(const int16_t* w, int64_t taps, int64_t C);
std::vector<int32_t> tap_pair_zero_terms(const int16_t* w2, int64_t taps, int64_t C, int32_t za);
void depthwise_u8_acc_row_pairs_avx512(const uint8_t* a, const int32_t* nz, const int16_t* w2, const uint8_t* zrow,
                                       const DepthwiseShape& s, int64_t oy, int32_t* acc);

}  // namespace mixq::kernels
