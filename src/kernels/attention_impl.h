// The body of attention_f32 for one ISA (attention.h), included once per ISA file, on the vector
// types of vec_ext.h (a tile of scores or outputs in registers on every path). The ISA files
// compile this with FMA contraction (-ffp-contract=fast): attention is
// tested against its reference within a tolerance, not bit for bit.
//
// Per (batch, head): K is packed once into [d][lkp] columns (lkp = lk rounded up to 16), V read in
// place when its rows are contiguous whole blocks (else packed into [lk][dvp]). Then per tile of
// kRows query rows: the scores (kRows x W in registers, summed over d), the row max and sum by
// vector reductions, exp inline on whole vectors, and the outputs summed over the keys with the
// unnormalised weights and scaled by 1/sum once per output block (dv values, not lk). The first
// version of this kernel called exp per row through a function, reduced each row lane by lane,
// copied every query tile and normalised every weight: 3-4x the arithmetic this needs.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/attention.h"
#include "kernels/vec_ext.h"

namespace mixq::kernels::attn_detail {

using namespace vec_ext;

constexpr int64_t kRows = 4;  // query rows per tile
inline int64_t pad16(int64_t n) { return (n + 15) / 16 * 16; }

// static: each ISA file keeps its own instantiation (a template shared across files compiled with
// different -m flags could be merged into the AVX-512 one by the linker).
template <int W>
static void attention_pairs(const AttnArgs& a, int64_t p0, int64_t p1, float* scratch) {
  using vec = vec_t<W>;
  using ivec = ivec_t<W>;
  const int64_t lq = a.lq, lk = a.lk, d = a.d, dv = a.dv, lkp = pad16(lk), dvp = pad16(dv);
  const float scale = a.scale;
  const bool divide = a.divide;
  // V in place: rows of whole blocks with unit stride (a ViT's [tokens, heads, dim] projection).
  const bool v_direct = a.v.sc == 1 && dv % W == 0;
  const int64_t dvw = (dv + W - 1) / W * W;  // output blocks: dv rounded up to the vector width
  // Scratch (attention_scratch_floats): K packed [d][lkp] (zero columns past lk), V packed
  // [lk][dvp] (zero past dv), kRows score rows [lkp].
  float* kp = scratch;
  float* vp = kp + d * lkp;
  float* srow = vp + lk * dvp;
  std::fill(kp, kp + d * lkp, 0.0f);
  if (!v_direct) std::fill(vp, vp + lk * dvp, 0.0f);
  ivec lane;
  for (int u = 0; u < W; ++u) lane[u] = u;
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t b = p / a.heads, h = p % a.heads;
    const float* q = a.q.p + b * a.q.sb + h * a.q.sh;
    const float* k = a.k.p + b * a.k.sb + h * a.k.sh;
    const float* v = a.v.p + b * a.v.sb + h * a.v.sh;
    const bool oc = a.o_sr < 0;
    const int64_t osr = oc ? dv : a.o_sr;
    float* o = oc ? a.o + p * lq * dv : a.o + b * a.o_sb + h * a.o_sh;
    for (int64_t c = 0; c < d; ++c) {
      float* kc = kp + c * lkp;
      const float* ks = k + c * a.k.sr;
      if (a.k.sc == 1) {
        std::memcpy(kc, ks, lk * sizeof(float));
      } else {
        for (int64_t j = 0; j < lk; ++j) kc[j] = ks[j * a.k.sc];
      }
    }
    const float* vb = v;
    int64_t vsr = a.v.sr;
    if (!v_direct) {
      for (int64_t j = 0; j < lk; ++j)
        for (int64_t e = 0; e < dv; ++e) vp[j * dvp + e] = v[j * a.v.sr + e * a.v.sc];
      vb = vp;
      vsr = dvp;
    }
    for (int64_t i0 = 0; i0 < lq; i0 += kRows) {
      const int64_t nr = std::min(kRows, lq - i0);
      // Rows past lq repeat the last row (their results are never stored).
      const float* qr[kRows];
      for (int64_t r = 0; r < kRows; ++r) qr[r] = q + (i0 + std::min(r, nr - 1)) * a.q.sr;
      // Scores: kRows rows x W columns in registers, summed over d; padding columns -inf.
      vec mx[kRows];
      for (int64_t r = 0; r < kRows; ++r) mx[r] = vec{} - __builtin_inff();
      // Two column blocks per pass: 2 x kRows independent sums keep both FMA ports busy (one
      // block's kRows chains wait on the FMA latency).
      auto finish = [&](const vec* t, int64_t jb) {
        const ivec valid = lane < static_cast<int32_t>(lk - jb);
        for (int64_t r = 0; r < kRows; ++r) {
          vec s = divide ? t[r] / scale : t[r] * scale;
          s = valid ? s : vec{} - __builtin_inff();
          mx[r] = s > mx[r] ? s : mx[r];
          vst(srow + r * lkp + jb, s);
        }
      };
      int64_t jb = 0;
      for (; jb + 2 * W <= lkp; jb += 2 * W) {
        vec t0[kRows] = {}, t1[kRows] = {};
        for (int64_t c = 0; c < d; ++c) {
          const vec k0 = vld<vec>(kp + c * lkp + jb), k1 = vld<vec>(kp + c * lkp + jb + W);
          for (int64_t r = 0; r < kRows; ++r) {
            const float qv = qr[r][c * a.q.sc];
            t0[r] += qv * k0;
            t1[r] += qv * k1;
          }
        }
        finish(t0, jb);
        finish(t1, jb + W);
      }
      for (; jb < lkp; jb += W) {
        vec t[kRows] = {};
        for (int64_t c = 0; c < d; ++c) {
          const vec kv = vld<vec>(kp + c * lkp + jb);
          for (int64_t r = 0; r < kRows; ++r) t[r] += qr[r][c * a.q.sc] * kv;
        }
        finish(t, jb);
      }
      // Softmax weights, unnormalised: e^(s - max) in place, and 1/sum per row.
      float inv[kRows];
      for (int64_t r = 0; r < kRows; ++r) {
        const float m = hmax(mx[r]);
        float* s = srow + r * lkp;
        vec sum = {};
        for (int64_t jb = 0; jb < lkp; jb += W) {
          const vec e = vexp_nonpos<vec, ivec>(vld<vec>(s + jb) - m);
          sum += e;
          vst(s + jb, e);
        }
        inv[r] = 1.0f / hsum(sum);  // one division per row, not per value
      }
      // Outputs: kRows rows x W values in registers, summed over the keys, times 1/sum.
      // Up to dv rounded to W, not to dvp: in place, V rows end at dv (reading on to dvp ran past the
      // last row of the tensor; found by AddressSanitizer).
      for (int64_t eb = 0; eb < dvw; eb += W) {
        // Even and odd keys in separate sums (twice the independent FMA chains).
        vec t[kRows] = {}, u[kRows] = {};
        int64_t j = 0;
        for (; j + 2 <= lk; j += 2) {
          const vec v0 = vld<vec>(vb + j * vsr + eb), v1 = vld<vec>(vb + (j + 1) * vsr + eb);
          for (int64_t r = 0; r < kRows; ++r) {
            t[r] += srow[r * lkp + j] * v0;
            u[r] += srow[r * lkp + j + 1] * v1;
          }
        }
        if (j < lk) {
          const vec v0 = vld<vec>(vb + j * vsr + eb);
          for (int64_t r = 0; r < kRows; ++r) t[r] += srow[r * lkp + j] * v0;
        }
        for (int64_t r = 0; r < nr; ++r) {
          const vec y = (t[r] + u[r]) * inv[r];
          float* orow = o + (i0 + r) * osr + eb;
          if (eb + W <= dv) {
            vst(orow, y);
          } else {
            for (int64_t e = 0; e < dv - eb; ++e) orow[e] = y[e];
          }
        }
      }
    }
  }
}

}  // namespace mixq::kernels::attn_detail

#define MIXQ_ATTENTION_BODY(ISA, W)                                                              \
  void attention_pairs_##ISA(const AttnArgs& a, int64_t p0, int64_t p1, float* scratch) {      \
    attn_detail::attention_pairs<W>(a, p0, p1, scratch);                                        \
  }
