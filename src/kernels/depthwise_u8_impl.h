// The fast body of depthwise_u8, included once per ISA file (each compiled with its own -m flags).
// Per output row: zero an [OW][C] int32 accumulator row, add each tap's contribution over the
// valid ox range (computed once per tap: no bounds checks inside), channels innermost so the loop
// vectorises; the fused epilogue rescales the row.
#pragma once

#include <algorithm>

#include "kernels/depthwise_u8.h"

namespace mixq::kernels {

// One output row's exact sums: acc [OW][C] (channels-last, the layout the fused epilogue reads).
inline void depthwise_u8_acc_body(const uint8_t* __restrict a, int32_t za, const int16_t* __restrict w,
                                  const DepthwiseShape& s, int64_t oy, int32_t* __restrict acc) {
  const int64_t C = s.C, H = s.H, W = s.W, OW = s.OW, KH = s.KH, KW = s.KW, SH = s.SH, SW = s.SW, PT = s.PT,
                PL = s.PL, DH = s.DH, DW = s.DW;
  std::fill(acc, acc + OW * C, 0);
  for (int64_t ky = 0; ky < KH; ++ky) {
    const int64_t iy = oy * SH - PT + ky * DH;
    if (iy < 0 || iy >= H) continue;
    const uint8_t* row = a + iy * W * C;
    for (int64_t kx = 0; kx < KW; ++kx) {
      const int16_t* wt = w + (ky * KW + kx) * C;
      const int64_t off = kx * DW - PL;  // ix = ox * SW + off
      const int64_t lo = off >= 0 ? 0 : (-off + SW - 1) / SW;
      const int64_t hi = std::min<int64_t>(OW, off >= W ? 0 : (W - 1 - off) / SW + 1);
      for (int64_t ox = lo; ox < hi; ++ox) {
        const uint8_t* src = row + (ox * SW + off) * C;
        int32_t* ac = acc + ox * C;
        for (int64_t c = 0; c < C; ++c) ac[c] += (int32_t(src[c]) - za) * int32_t(wt[c]);
      }
    }
  }
}

// The tap-pair kernels' row driver (one per ISA file, which supplies `pixel`): sets src[t] to the
// start of tap t's C input codes for each output pixel (zrow for taps outside the image, and for
// src[T], the partner of an odd last tap, whose weights are 0) and calls pixel(src, out).
template <class Pixel>
inline void depthwise_pairs_row(const uint8_t* a, const uint8_t* zrow, const DepthwiseShape& s, int64_t oy,
                                int32_t* acc, Pixel pixel) {
  const int64_t C = s.C, H = s.H, W = s.W, OW = s.OW, KH = s.KH, KW = s.KW, T = KH * KW;
  const uint8_t* src[64 + 1];  // the runtime keeps depthwise taps <= 64
  src[T] = zrow;
  // Output pixels whose taps are all inside the image: this row's kernel rows all inside, and ox
  // in [lo, hi). Their tap rows are the first pixel's plus ox * SW * C.
  bool rows_inside = true;
  for (int64_t ky = 0; ky < KH; ++ky) {
    const int64_t iy = oy * s.SH - s.PT + ky * s.DH;
    rows_inside = rows_inside && iy >= 0 && iy < H;
  }
  int64_t lo = 0, hi = OW;
  while (lo < OW && lo * s.SW - s.PL < 0) ++lo;
  while (hi > lo && (hi - 1) * s.SW - s.PL + (KW - 1) * s.DW >= W) --hi;
  if (!rows_inside) lo = hi = 0;
  for (int64_t ox = 0; ox < OW; ++ox) {
    if (ox == lo && lo < hi) {  // the interior run
      const uint8_t* base[64];
      for (int64_t ky = 0, t = 0; ky < KH; ++ky)
        for (int64_t kx = 0; kx < KW; ++kx, ++t)
          base[t] = a + ((oy * s.SH - s.PT + ky * s.DH) * W + lo * s.SW - s.PL + kx * s.DW) * C;
      for (; ox < hi; ++ox) {
        const int64_t step = (ox - lo) * s.SW * C;
        for (int64_t t = 0; t < T; ++t) src[t] = base[t] + step;
        pixel(src, acc + ox * C);
      }
      if (ox >= OW) break;
    }
    for (int64_t ky = 0, t = 0; ky < KH; ++ky) {
      const int64_t iy = oy * s.SH - s.PT + ky * s.DH;
      for (int64_t kx = 0; kx < KW; ++kx, ++t) {
        const int64_t ix = ox * s.SW - s.PL + kx * s.DW;
        src[t] = iy < 0 || iy >= H || ix < 0 || ix >= W ? zrow : a + (iy * W + ix) * C;
      }
    }
    pixel(src, acc + ox * C);
  }
}

}  // namespace mixq::kernels
