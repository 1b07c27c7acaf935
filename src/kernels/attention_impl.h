// The body of attention_f32 for one ISA (attention.h), included once per ISA file. Blocks of W
// floats are GCC vector-extension values of the ISA's register width (16 on AVX-512, 8 on AVX2, 4
// on the baseline's SSE2), so the same source keeps a tile of scores or outputs in registers on
// every path; no FMA contraction (-ffp-contract=off in the ISA files).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "kernels/attention.h"
#include "kernels/vmath.h"

namespace mixq::kernels::attn_detail {

constexpr int64_t kRows = 4;  // query rows per tile
typedef float v4f __attribute__((vector_size(16)));
typedef float v8f __attribute__((vector_size(32)));
typedef float v16f __attribute__((vector_size(64)));
inline int64_t pad16(int64_t n) { return (n + 15) / 16 * 16; }

// static: each ISA file keeps its own instantiation (a template shared across files compiled with
// different -m flags could be merged into the AVX-512 one by the linker).
template <int W, void (*Exp)(const float*, float*, int64_t)>
static void attention_pairs(const AttnArgs& a, int64_t p0, int64_t p1, float* scratch) {
  // (a vector_size depending on W would be ignored by GCC inside the template: pick a fixed type)
  using vec = std::conditional_t<W == 16, v16f, std::conditional_t<W == 8, v8f, v4f>>;
  auto ld = [](const float* p) {
    vec r;
    std::memcpy(&r, p, sizeof r);
    return r;
  };
  auto st = [](float* p, vec v) { std::memcpy(p, &v, sizeof v); };
  const int64_t lq = a.lq, lk = a.lk, d = a.d, dv = a.dv, lkp = pad16(lk), dvp = pad16(dv);
  const float scale = a.scale;
  const bool divide = a.divide;
  // Scratch (attention_scratch_floats): K packed [d][lkp] (zero columns past lk), V packed
  // [lk][dvp] (zero past dv), kRows score rows [lkp], kRows output rows [dvp], a query tile
  // [kRows][d]; lkp, dvp = lk, dv rounded up to 16.
  float* kp = scratch;
  float* vp = kp + d * lkp;
  float* srow = vp + lk * dvp;
  float* orow = srow + kRows * lkp;
  float* qt = orow + kRows * dvp;
  std::fill(kp, kp + d * lkp + lk * dvp, 0.0f);
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t b = p / a.heads, h = p % a.heads;
    const float* q = a.q.p + b * a.q.sb + h * a.q.sh;
    const float* k = a.k.p + b * a.k.sb + h * a.k.sh;
    const float* v = a.v.p + b * a.v.sb + h * a.v.sh;
    float* o = a.o + p * lq * dv;
    for (int64_t c = 0; c < d; ++c)
      for (int64_t j = 0; j < lk; ++j) kp[c * lkp + j] = k[c * a.k.sr + j * a.k.sc];
    for (int64_t j = 0; j < lk; ++j)
      for (int64_t e = 0; e < dv; ++e) vp[j * dvp + e] = v[j * a.v.sr + e * a.v.sc];
    for (int64_t i0 = 0; i0 < lq; i0 += kRows) {
      const int64_t nr = std::min(kRows, lq - i0);
      for (int64_t r = 0; r < kRows; ++r)
        for (int64_t c = 0; c < d; ++c) qt[r * d + c] = r < nr ? q[(i0 + r) * a.q.sr + c * a.q.sc] : 0.0f;
      // Scores: a tile of kRows rows x W columns in registers, summed over d, then scaled.
      for (int64_t jb = 0; jb < lkp; jb += W) {
        vec t[kRows] = {};
        for (int64_t c = 0; c < d; ++c) {
          const vec kv = ld(kp + c * lkp + jb);
          for (int64_t r = 0; r < kRows; ++r) t[r] += qt[r * d + c] * kv;
        }
        for (int64_t r = 0; r < kRows; ++r) st(srow + r * lkp + jb, divide ? t[r] / scale : t[r] * scale);
      }
      // Softmax of each row (max subtracted, exp, times 1/sum) on whole blocks: the columns past
      // lk hold -inf, so they give 0 after exp and change neither the max nor the sum.
      for (int64_t r = 0; r < nr; ++r) {
        float* s = srow + r * lkp;
        for (int64_t j = lk; j < lkp; ++j) s[j] = -INFINITY;
        vec m = ld(s);
        for (int64_t jb = W; jb < lkp; jb += W) {
          const vec x = ld(s + jb);
          m = x > m ? x : m;
        }
        float mx = m[0];
        for (int u = 1; u < W; ++u) mx = std::max(mx, m[u]);
        for (int64_t jb = 0; jb < lkp; jb += W) st(s + jb, ld(s + jb) - mx);
        Exp(s, s, lkp);
        vec sv = {};
        for (int64_t jb = 0; jb < lkp; jb += W) sv += ld(s + jb);
        float sum = 0.0f;
        for (int u = 0; u < W; ++u) sum += sv[u];
        const float inv = 1.0f / sum;  // one division per row, not per value
        for (int64_t jb = 0; jb < lkp; jb += W) st(s + jb, ld(s + jb) * inv);
      }
      // Outputs: kRows rows x W values in registers, summed over the keys.
      for (int64_t eb = 0; eb < dvp; eb += W) {
        vec t[kRows] = {};
        for (int64_t j = 0; j < lk; ++j) {
          const vec vv = ld(vp + j * dvp + eb);
          for (int64_t r = 0; r < kRows; ++r) t[r] += srow[r * lkp + j] * vv;
        }
        for (int64_t r = 0; r < kRows; ++r) st(orow + r * dvp + eb, t[r]);
      }
      for (int64_t r = 0; r < nr; ++r) std::memcpy(o + (i0 + r) * dv, orow + r * dvp, dv * sizeof(float));
    }
  }
}

}  // namespace mixq::kernels::attn_detail

#define MIXQ_ATTENTION_BODY(ISA, W)                                                              \
  void attention_pairs_##ISA(const AttnArgs& a, int64_t p0, int64_t p1, float* scratch) {      \
    attn_detail::attention_pairs<W, exp_f32_##ISA>(a, p0, p1, scratch);                         \
  }
