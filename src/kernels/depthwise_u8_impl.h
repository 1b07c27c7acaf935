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

}  // namespace mixq::kernels
