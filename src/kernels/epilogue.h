// The integer layers' epilogue on rows of int32 accumulators (n output channels of one output
// pixel or token per row), fused so that a layer writes what its readers need in one pass:
//   s = acc[i][j] + off[j] - zw[j] * rsum[i]           (exact integers; off / zw may be null: the
//                                                       layer's zero-point terms, qlinear.h)
//   v = scale[j] * float(s) + bias[j]
//   v = clamp(v, act.lo, act.hi)                        (a fused Relu / Clip; +-inf when none)
//   v = clamp(v + sum[i][j], post.lo, post.hi)          (a fused residual Add and the Relu after
//                                                       it; only when `sum` is set)
//   f32: y[i][j] = v
//   u8:  y[i][j] = clamp(round_half_even(v / q.scale) + q.zq, q.lo, q.hi) - q.lo
//        (the next layer's activation quantizer, exactly as quantize_u8 computes it)
// Every path gives the same bits as the unfused sequence (rescale, then the Relu/Clip op, then the
// reader's quantize_u8): same float operations in the same order, compiled with
// -ffp-contract=off. Paths: reference loops; AVX2 (compiler-vectorised); AVX-512 by hand.
// Also the row sums of uint8 codes the zw term needs. No libtorch.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/isa.h"

namespace mixq::kernels {

struct ActClamp {  // a fused activation: Relu = {0, inf}, Clip(a, b) = {a, b}
  float lo = -INFINITY, hi = INFINITY;
};

struct OutQuant {  // an activation quantizer producing uint8 codes (see quantize.h)
  float scale = 1, zq = 0, lo = 0, hi = 255;
};

struct EpiRows {
  const int32_t* acc = nullptr;  // m rows of n, row stride lda
  int64_t m = 0, n = 0, lda = 0;
  const int32_t* off = nullptr;   // [n] or null
  const int32_t* zw = nullptr;    // [n] or null (then rsum is not read)
  const int32_t* rsum = nullptr;  // [m]
  const float* scale = nullptr;   // [n]
  const float* bias = nullptr;    // [n]
  ActClamp act;
  const float* sum = nullptr;  // m rows of n, row stride lds, or null
  int64_t lds = 0;
  ActClamp post;
};

void epilogue_f32(const EpiRows& e, float* y, int64_t ldy, Isa isa);
void epilogue_u8(const EpiRows& e, const OutQuant& q, uint8_t* y, int64_t ldy, Isa isa);
void epilogue_f32_ref(const EpiRows& e, float* y, int64_t ldy);
void epilogue_u8_ref(const EpiRows& e, const OutQuant& q, uint8_t* y, int64_t ldy);
void epilogue_f32_avx2(const EpiRows& e, float* y, int64_t ldy);
void epilogue_u8_avx2(const EpiRows& e, const OutQuant& q, uint8_t* y, int64_t ldy);
void epilogue_f32_avx512(const EpiRows& e, float* y, int64_t ldy);
void epilogue_u8_avx512(const EpiRows& e, const OutQuant& q, uint8_t* y, int64_t ldy);

// out[i] = sum of the first k bytes of row i (rows of stride lda).
void row_sums_u8(const uint8_t* a, int64_t m, int64_t k, int64_t lda, int32_t* out, Isa isa);
void row_sums_u8_ref(const uint8_t* a, int64_t m, int64_t k, int64_t lda, int32_t* out);
void row_sums_u8_avx512(const uint8_t* a, int64_t m, int64_t k, int64_t lda, int32_t* out);

}  // namespace mixq::kernels
