#include "kernels/depthwise_u8.h"

#include "kernels/depthwise_u8_impl.h"

namespace mixq::kernels {

void depthwise_u8_acc_row_ref(const uint8_t* a, int32_t za, const int16_t* w, const DepthwiseShape& s, int64_t oy,
                              int32_t* acc) {
  for (int64_t ox = 0; ox < s.OW; ++ox)
    for (int64_t c = 0; c < s.C; ++c) {
      int32_t sum = 0;
      for (int64_t ky = 0; ky < s.KH; ++ky)
        for (int64_t kx = 0; kx < s.KW; ++kx) {
          const int64_t iy = oy * s.SH - s.PT + ky * s.DH, ix = ox * s.SW - s.PL + kx * s.DW;
          if (iy < 0 || iy >= s.H || ix < 0 || ix >= s.W) continue;
          sum += (int32_t(a[(iy * s.W + ix) * s.C + c]) - za) * int32_t(w[(ky * s.KW + kx) * s.C + c]);
        }
      acc[ox * s.C + c] = sum;
    }
}

void depthwise_u8_acc_row_base(const uint8_t* a, int32_t za, const int16_t* w, const DepthwiseShape& s, int64_t oy,
                               int32_t* acc) {
  depthwise_u8_acc_body(a, za, w, s, oy, acc);
}

void depthwise_u8_acc_row(const uint8_t* a, int32_t za, const int16_t* w, const DepthwiseShape& s, int64_t oy,
                          int32_t* acc, Isa isa) {
  switch (isa) {
    case Isa::kRef: depthwise_u8_acc_row_ref(a, za, w, s, oy, acc); break;
    case Isa::kAvx2: depthwise_u8_acc_row_avx2(a, za, w, s, oy, acc); break;
    case Isa::kAvx512: depthwise_u8_acc_row_avx512(a, za, w, s, oy, acc); break;
  }
}

std::vector<int16_t> interleave_tap_pairs(const int16_t* w, int64_t taps, int64_t C) {
  const int64_t pairs = (taps + 1) / 2;
  std::vector<int16_t> w2(static_cast<size_t>(pairs * C * 2), 0);
  for (int64_t p = 0; p < pairs; ++p)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t h = 0; h < 2; ++h)
        if (2 * p + h < taps) w2[(p * C + c) * 2 + h] = w[(2 * p + h) * C + c];
  return w2;
}

std::vector<int32_t> tap_pair_zero_terms(const int16_t* w2, int64_t taps, int64_t C, int32_t za) {
  const int64_t pairs = (taps + 1) / 2;
  std::vector<int32_t> nz(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    int32_t ws = 0;
    for (int64_t p = 0; p < pairs; ++p) ws += int32_t(w2[(p * C + c) * 2]) + int32_t(w2[(p * C + c) * 2 + 1]);
    nz[c] = -za * ws;
  }
  return nz;
}

bool dw_quads_fit(const int16_t* w, int64_t taps, int64_t C) {
  for (int64_t i = 0; i < taps * C; ++i)
    if (w[i] < -128 || w[i] > 127) return false;
  return true;
}

DwQuads pack_dw_quads(const int16_t* w, const DepthwiseShape& s, int32_t za) {
  DwQuads q;
  q.C = s.C;
  q.CB = (s.C + 15) / 16;
  q.KH = s.KH;
  q.KW = s.KW;
  q.nq = (s.KW + 3) / 4;
  q.split = !dw_quads_fit(w, s.KH * s.KW, s.C);
  q.w4.assign(static_cast<size_t>(s.KH * q.nq * q.CB * 64), 0);
  if (q.split) q.w4l.assign(q.w4.size(), 0);
  q.nz.assign(static_cast<size_t>(q.CB * 16), 0);
  for (int64_t ky = 0; ky < s.KH; ++ky)
    for (int64_t kx = 0; kx < s.KW; ++kx)
      for (int64_t c = 0; c < s.C; ++c) {
        const int64_t g = ky * q.nq + kx / 4;
        const int32_t v = w[(ky * s.KW + kx) * s.C + c];
        const size_t at = static_cast<size_t>(((g * q.CB + c / 16) * 16 + c % 16) * 4 + kx % 4);
        if (q.split) {
          const int32_t h = v >= 0 ? v / 2 : -((-v + 1) / 2);  // floor(v / 2)
          q.w4[at] = static_cast<int8_t>(h);
          q.w4l[at] = static_cast<int8_t>(v - 2 * h);
        } else {
          q.w4[at] = static_cast<int8_t>(v);
        }
        q.nz[static_cast<size_t>(c)] -= za * v;
      }
  return q;
}

}  // namespace mixq::kernels
