// The bodies of epilogue_f32 / epilogue_u8, included once per ISA file (each compiled with its own
// -m flags). The clamp is written as the Relu op writes it (v > lo ? v : lo) then as Clip's upper
// bound, so that fused and unfused runs agree bit for bit. The fast u8 body requantizes through
// quantize_chunk (quantize_impl.h: division only near rounding boundaries).
#pragma once

#include "kernels/epilogue.h"
#include "kernels/quantize_impl.h"

namespace mixq::kernels {

// Row i's corrected integer sums, rescaled and clamped, into v[0, n).
inline void epilogue_row_values(const EpiRows& e, int64_t i, int64_t j0, int64_t n, float* __restrict v) {
  const int32_t* __restrict acc = e.acc + i * e.lda + j0;
  const float* __restrict scale = e.scale + j0;
  const float* __restrict bias = e.bias + j0;
  const float lo = e.act.lo, hi = e.act.hi;
  const int32_t rs = e.zw ? e.rsum[i] : 0;
  for (int64_t j = 0; j < n; ++j) {
    int32_t s = acc[j];
    if (e.off) s += e.off[j0 + j];
    if (e.zw) s -= e.zw[j0 + j] * rs;
    float t = scale[j] * static_cast<float>(s) + bias[j];
    t = t > lo ? t : lo;
    v[j] = t < hi ? t : hi;
  }
  if (e.sum) {
    const float* __restrict add = e.sum + i * e.lds + j0;
    const float plo = e.post.lo, phi = e.post.hi;
    for (int64_t j = 0; j < n; ++j) {
      float t = v[j] + add[j];
      t = t > plo ? t : plo;
      v[j] = t < phi ? t : phi;
    }
  }
}

// The u8 epilogue: the values above, then quantize_u8's formula, in blocks of 64 channels (the
// reference, and the compiler-vectorised AVX2 body; AVX-512 has intrinsics).
inline void epilogue_u8_body(const EpiRows& e, const OutQuant& q, uint8_t* y, int64_t ldy) {
  const float inv = quant_inv(q.scale);
  float v[64];
  for (int64_t i = 0; i < e.m; ++i)
    for (int64_t j0 = 0; j0 < e.n; j0 += 64) {
      const int64_t w = e.n - j0 < 64 ? e.n - j0 : 64;
      epilogue_row_values(e, i, j0, w, v);
      quantize_u8_body(v, w, inv, q.zq, q.lo, q.hi, y + i * ldy + j0);
    }
}

inline void epilogue_f32_body(const EpiRows& e, float* y, int64_t ldy) {
  for (int64_t i = 0; i < e.m; ++i) epilogue_row_values(e, i, 0, e.n, y + i * ldy);
}

}  // namespace mixq::kernels
