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
// baseline x86-64, AVX2 and AVX-512: one file each); on AVX-512 the runtime uses the tap-quad
// kernel below (the tap-pair kernel stays for comparison and its tests).
#pragma once

#include <cstdint>

#include <vector>

#include "kernels/aligned.h"
#include "kernels/epilogue.h"
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
// The same on AVX2 (vpmaddwd + add per tap pair and 8 channels): the runtime's depthwise kernel on
// CPUs without AVX-512 (2x+ the compiler-vectorised body; BENCHMARKS.md).
void depthwise_u8_acc_row_pairs_avx2(const uint8_t* a, const int32_t* nz, const int16_t* w2, const uint8_t* zrow,
                                     const DepthwiseShape& s, int64_t oy, int32_t* acc);

// AVX-512 VNNI form: the taps of each kernel row in groups of four (kx)
// summed by one vpdpbusd (u8 x s8 products summed in fours into int32, exact), reading a copy of
// the input rows interleaved by those taps, so the multiply-adds need no shuffles; each interleaved
// row is built once and reused by every output row that reads it (a stride-1 3x3 layer: 3 output
// rows). 2-2.5x fewer shuffle instructions than the tap pairs for 3x3 kernels.
// Weights beyond int8 (an asymmetric 8-bit grid: w = q - zw in [-255, 255]) are split exactly as
// w = 2 h + l (h = floor(w / 2) in [-128, 127], l in {0, 1}): two vpdpbusd per tap group, summed
// as 2 * sum(a h) + sum(a l).
struct DwQuads {
  int64_t C = 0, CB = 0, KH = 0, KW = 0, nq = 0;  // CB: blocks of 16 channels; nq: ceil(KW / 4)
  bool split = false;   // w4 holds h and w4l holds l (else w4 holds w)
  avector<int8_t> w4;   // [KH * nq][CB][16][4]: w[ky * KW + 4q + t][c] (0 past KW or C)
  avector<int8_t> w4l;  // the same layout: l (split only)
  avector<int32_t> nz;  // [CB * 16]: -za * (channel c's weights summed)
};
// Whether every weight fits int8 ([-128, 127]): one vpdpbusd per tap group (else the split form).
bool dw_quads_fit(const int16_t* w, int64_t taps, int64_t C);
// w: [KH * KW][C], |w| <= 255.
DwQuads pack_dw_quads(const int16_t* w, const DepthwiseShape& s, int32_t za);
// The interleaved input rows of one image (per thread; the caller owns it): KH slots of
// [OW][nq][CB][64] bytes tagged with their input row, and the row of taps outside the image.
struct DwQuadRows {
  avector<uint8_t> buf, pad;
  std::vector<int64_t> tag;
  const uint8_t* img = nullptr;  // the image the tags refer to (another image: rebuilt)
  int64_t row_bytes = 0;
  void reset() { img = nullptr; }  // before a run (the same buffer may hold new codes)
};
// Output row oy's exact sums into acc [OW][C], as depthwise_u8_acc_row. `zrow`: C bytes of za.
void depthwise_u8_acc_row_quads_avx512(const uint8_t* a, const DwQuads& q, const uint8_t* zrow,
                                       const DepthwiseShape& s, int64_t oy, DwQuadRows& rows, int32_t* acc);
// The same sums through the layer's epilogue `e` (kernels/epilogue.h; e.acc unused, e.m = OW rows,
// e.n = C) in registers, written as codes of `oq` into y [OW][ldy]: epilogue_u8 of the sums,
// bit for bit, without storing them.
void depthwise_u8_row_quads_epi_avx512(const uint8_t* a, const DwQuads& q, const uint8_t* zrow,
                                       const DepthwiseShape& s, int64_t oy, DwQuadRows& rows, const EpiRows& e,
                                       const OutQuant& oq, uint8_t* y, int64_t ldy);

}  // namespace mixq::kernels
