// AVX-512 (F/BW/VL + VNNI) path of the low-bit kernels (gemv_lowbit.h). Per output panel of 16
// rows and per chunk of up to 4 activation rows, each k-block of the weight is unpacked once into
// one zmm of 64 codes (a shift and an and per bit plane) and used by every row of the chunk:
//   integer: one vpdpbusd per row (16 outputs x 4 k); one row keeps 4 accumulators (vpdpbusd's
//            latency would otherwise bound a GEMV). Beyond kLowbitFlyRows rows each panel is
//            unpacked once to int8 and the same tile runs over it (a GEMM, not a GEMV);
//   float:   per k (t = 0..3 inside the k-block) the lane's byte becomes float(u - z) exactly with
//            one vpternlogd ((byte ^ flip) | 0x4B000000 is the float 2^23 + u) and one vsubps
//            (minus 2^23 + z), then one FMA per row into partial sum t (the order of the header).
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/gemv_lowbit.h"
#include "kernels/gemv_lowbit_simd.h"

namespace mixq::kernels {

namespace {

using lowbit_simd::load4;
using lowbit_simd::prefetch_ahead;

// k-block j of a W-bit plane: bits [(j % per) * W, +W) of vector j / per.
template <int W>
inline __m512i field(const uint8_t* plane, int j) {
  constexpr int per = 8 / W;
  const __m512i v = _mm512_loadu_si512(plane + 64 * (j / per));
  if constexpr (W == 8) return v;
  const __m512i sh = _mm512_srli_epi16(v, static_cast<unsigned>((j % per) * W));
  return _mm512_and_si512(sh, _mm512_set1_epi8(static_cast<char>((1 << W) - 1)));
}

// Plane vector of k-block j of a W-bit plane shifted so its field lands at bit `to` of each byte
// (other bits: garbage). Shifting 16-bit lanes is safe: the bits kept come from the same byte.
template <int W>
inline __m512i field_at(const uint8_t* plane, int j, int to) {
  constexpr int per = 8 / W;
  const __m512i v = _mm512_loadu_si512(plane + 64 * (j / per));
  const int from = (j % per) * W;
  if (from > to) return _mm512_srli_epi16(v, static_cast<unsigned>(from - to));
  if (from < to) return _mm512_slli_epi16(v, static_cast<unsigned>(to - from));
  return v;
}

// The 64 codes of k-block j of a super-block (the planes' bits put together): two-plane widths
// take the high plane's field in place with one shift and merge it with one vpternlogd
// (lo | (hi & mask), imm 0xF8).
template <int BITS>
inline __m512i kblock(const uint8_t* sb, int j) {
  constexpr int LO = BITS == 8 ? 8 : (BITS <= 3 ? 2 : 4), HI = BITS - LO;
  const __m512i u = field<LO>(sb, j);
  if constexpr (HI == 0) {
    return u;
  } else {
    const __m512i mask = _mm512_set1_epi8(static_cast<char>(((1 << HI) - 1) << LO));
    return _mm512_ternarylogic_epi32(u, field_at<HI>(sb + 64 * LO, j, LO), mask, 0xF8);
  }
}

template <int BITS, int R>
void u8_rows(const uint8_t* A, int64_t lda, const uint8_t* panel, int64_t nsb, int32_t* C, int64_t ldc,
             __mmask16 mask) {
  constexpr int NA = R == 1 ? 4 : (R == 2 ? 2 : 1);
  __m512i acc[R][NA];
  for (int r = 0; r < R; ++r)
    for (int a = 0; a < NA; ++a) acc[r][a] = _mm512_setzero_si512();
  for (int64_t sb = 0; sb < nsb; ++sb) {
    const uint8_t* p = panel + sb * 64 * BITS;
    const uint8_t* a = A + sb * kLowbitSuper;
    prefetch_ahead<BITS>(p);
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      const __m512i u = kblock<BITS>(p, j);
      for (int r = 0; r < R; ++r)
        acc[r][j % NA] = _mm512_dpbusd_epi32(acc[r][j % NA], _mm512_set1_epi32(load4(a + r * lda + 4 * j)), u);
    }
  }
  for (int r = 0; r < R; ++r) {
    __m512i s = acc[r][0];
    for (int a = 1; a < NA; ++a) s = _mm512_add_epi32(s, acc[r][a]);
    _mm512_mask_storeu_epi32(C + r * ldc, mask, s);
  }
}

// Layout BITS: the panel's storage (8 = one int8 byte per code, also the unpacked panel below).
template <int BITS>
void u8_panel_rows(const uint8_t* A, int64_t lda, int64_t m, const uint8_t* panel, int64_t nsb, int32_t* c,
                   int64_t ldc, __mmask16 mask) {
  int64_t i = 0;
  for (; i + 4 <= m; i += 4) u8_rows<BITS, 4>(A + i * lda, lda, panel, nsb, c + i * ldc, ldc, mask);
  switch (m - i) {
    case 3: u8_rows<BITS, 3>(A + i * lda, lda, panel, nsb, c + i * ldc, ldc, mask); break;
    case 2: u8_rows<BITS, 2>(A + i * lda, lda, panel, nsb, c + i * ldc, ldc, mask); break;
    case 1: u8_rows<BITS, 1>(A + i * lda, lda, panel, nsb, c + i * ldc, ldc, mask); break;
    default: break;
  }
}

template <int BITS>
void u8_panels(const uint8_t* A, int64_t lda, int64_t m, const LowbitWeights& W, int64_t p0, int64_t p1, int32_t* C,
               int64_t ldc) {
  const int64_t nsb = W.super_blocks();
  // More rows than one chunk: unpack the panel once (16 x kp bytes, cache-resident) and run the
  // int8 tile over it, so a GEMM pays the unpacking once per panel instead of once per 4 rows.
  const bool unpack_once = BITS < 8 && m > kLowbitFlyRows;
  std::vector<uint8_t> buf(unpack_once ? static_cast<size_t>(nsb * 64 * 8) : 0);
  for (int64_t p = p0; p < p1; ++p) {
    const uint8_t* panel = W.data.data() + p * nsb * 64 * BITS;
    const int64_t cols = std::min(kLowbitPanel, W.n - p * kLowbitPanel);
    const __mmask16 mask = static_cast<__mmask16>((1u << cols) - 1u);
    int32_t* c = C + p * kLowbitPanel;
    if (unpack_once) {
      for (int64_t sb = 0; sb < nsb; ++sb)
        for (int j = 0; j < 8; ++j)
          _mm512_storeu_si512(buf.data() + (sb * 8 + j) * 64, kblock<BITS>(panel + sb * 64 * BITS, j));
      u8_panel_rows<8>(A, lda, m, buf.data(), nsb, c, ldc, mask);
    } else {
      u8_panel_rows<BITS>(A, lda, m, panel, nsb, c, ldc, mask);
    }
  }
}

template <int BITS, int R>
void f32_rows(const float* X, int64_t ldx, const LowbitWeights& W, int64_t p, const float* bias, float* Y,
              int64_t ldy, __mmask16 mask) {
  const int64_t nsb = W.super_blocks(), G = W.groups, sbg = W.group_size / kLowbitSuper;
  const uint8_t* panel = W.data.data() + p * nsb * 64 * BITS;
  const __m512i lo8 = _mm512_set1_epi32(0xFF), magic = _mm512_set1_epi32(0x4B000000 | (BITS == 8 ? 0x80 : 0));
  __m512 y[R];
  for (int r = 0; r < R; ++r) y[r] = _mm512_setzero_ps();
  for (int64_t g = 0; g < G; ++g) {
    const __m512 zb = _mm512_loadu_ps(W.zero_p.data() + (p * G + g) * kLowbitPanel);
    const __m512 s = _mm512_loadu_ps(W.scale_p.data() + (p * G + g) * kLowbitPanel);
    __m512 acc[R][4];
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < 4; ++t) acc[r][t] = _mm512_setzero_ps();
    const int64_t sb1 = std::min(nsb, (g + 1) * sbg);
    for (int64_t sb = g * sbg; sb < sb1; ++sb) {
      const uint8_t* pb = panel + sb * 64 * BITS;
      const float* x = X + sb * kLowbitSuper;
      prefetch_ahead<BITS>(pb);
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        const __m512i u = kblock<BITS>(pb, j);
#pragma GCC unroll 4
        for (int t = 0; t < 4; ++t) {
          const __m512i ut = t ? _mm512_srli_epi32(u, static_cast<unsigned>(8 * t)) : u;
          // B ? A ^ C : C (imm 0x6A) with B = 0xFF: the lane's byte (xor the 8-bit flip) under 2^23.
          const __m512 w = _mm512_sub_ps(_mm512_castsi512_ps(_mm512_ternarylogic_epi32(ut, lo8, magic, 0x6A)), zb);
          for (int r = 0; r < R; ++r)
            acc[r][t] = _mm512_fmadd_ps(_mm512_set1_ps(x[r * ldx + 4 * j + t]), w, acc[r][t]);
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      const __m512 sum = _mm512_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]), _mm512_add_ps(acc[r][2], acc[r][3]));
      y[r] = _mm512_fmadd_ps(s, sum, y[r]);
    }
  }
  const __m512 b = bias ? _mm512_maskz_loadu_ps(mask, bias + p * kLowbitPanel) : _mm512_setzero_ps();
  for (int r = 0; r < R; ++r) _mm512_mask_storeu_ps(Y + r * ldy, mask, _mm512_add_ps(y[r], b));
}

template <int BITS>
void f32_panels(const float* X, int64_t ldx, int64_t m, const LowbitWeights& W, const float* bias, int64_t p0,
                int64_t p1, float* Y, int64_t ldy) {
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t cols = std::min(kLowbitPanel, W.n - p * kLowbitPanel);
    const __mmask16 mask = static_cast<__mmask16>((1u << cols) - 1u);
    float* y = Y + p * kLowbitPanel;
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) f32_rows<BITS, 4>(X + i * ldx, ldx, W, p, bias, y + i * ldy, ldy, mask);
    switch (m - i) {
      case 3: f32_rows<BITS, 3>(X + i * ldx, ldx, W, p, bias, y + i * ldy, ldy, mask); break;
      case 2: f32_rows<BITS, 2>(X + i * ldx, ldx, W, p, bias, y + i * ldy, ldy, mask); break;
      case 1: f32_rows<BITS, 1>(X + i * ldx, ldx, W, p, bias, y + i * ldy, ldy, mask); break;
      default: break;
    }
  }
}

}  // namespace

void gemm_lowbit_u8_avx512(const uint8_t* A, int64_t lda, int64_t m, const LowbitWeights& W, int64_t p0, int64_t p1,
                           int32_t* C, int64_t ldc) {
  with_lowbit_width(W.bits, [&](auto b) { u8_panels<decltype(b)::value>(A, lda, m, W, p0, p1, C, ldc); });
}

void gemm_lowbit_f32_avx512(const float* X, int64_t ldx, int64_t m, const LowbitWeights& W, const float* bias,
                            int64_t p0, int64_t p1, float* Y, int64_t ldy) {
  with_lowbit_width(W.bits, [&](auto b) { f32_panels<decltype(b)::value>(X, ldx, m, W, bias, p0, p1, Y, ldy); });
}

}  // namespace mixq::kernels
