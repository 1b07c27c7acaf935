// AVX2 path of the low-bit kernels (gemv_lowbit.h; compiled with -mavx2 -mfma). A 16-row panel is
// taken as two halves of 8 rows (bytes [32h, 32h + 32) of every 64-byte vector), one after the
// other: 16 ymm registers do not hold both halves' accumulators for 4 rows.
//   integer: vpmaddubsw (u8 activations x s8 codes, pairs summed to int16) then vpmaddwd by 1.
//            Exact below 8 bits: |a0 w0 + a1 w1| <= 2 * 255 * 63 < 32767, so nothing saturates.
//            At 8 bits the stored int8 s = u - 128 is split as 16 * hi + lo (hi = s >> 4 in
//            [-8, 7], lo in [0, 15]), two exact vpmaddubsw.
//   float:   the lane's byte to float(u - z) with and / xor / vsubps (the 2^23 trick of the AVX-512
//            file), one FMA per row into partial sum t; chunks of up to 2 rows (register budget).
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

template <int W>
inline __m256i field(const uint8_t* plane, int j, int h) {
  constexpr int per = 8 / W;
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(plane + 64 * (j / per) + 32 * h));
  if constexpr (W == 8) return v;
  const __m256i sh = _mm256_srli_epi16(v, (j % per) * W);
  return _mm256_and_si256(sh, _mm256_set1_epi8(static_cast<char>((1 << W) - 1)));
}

// As the AVX-512 file: the high plane's field shifted in place (one shift), masked and or-ed.
template <int W>
inline __m256i field_at(const uint8_t* plane, int j, int h, int to) {
  constexpr int per = 8 / W;
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(plane + 64 * (j / per) + 32 * h));
  const int from = (j % per) * W;
  if (from > to) return _mm256_srli_epi16(v, from - to);
  if (from < to) return _mm256_slli_epi16(v, to - from);
  return v;
}

template <int BITS>
inline __m256i kblock(const uint8_t* sb, int j, int h) {
  constexpr int LO = BITS == 8 ? 8 : (BITS <= 3 ? 2 : 4), HI = BITS - LO;
  const __m256i u = field<LO>(sb, j, h);
  if constexpr (HI == 0) {
    return u;
  } else {
    const __m256i mask = _mm256_set1_epi8(static_cast<char>(((1 << HI) - 1) << LO));
    return _mm256_or_si256(u, _mm256_and_si256(field_at<HI>(sb + 64 * LO, j, h, LO), mask));
  }
}

// sum over each 4 bytes of a * w as int32 (w signed; see the file comment for exactness).
template <int BITS>
inline __m256i dot4(__m256i a, __m256i w) {
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (BITS < 8) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(a, w), ones);
  } else {
    const __m256i n4 = _mm256_set1_epi8(0x0F), e8 = _mm256_set1_epi8(0x08);
    const __m256i lo = _mm256_and_si256(w, n4);
    const __m256i hi = _mm256_sub_epi8(_mm256_xor_si256(_mm256_and_si256(_mm256_srli_epi16(w, 4), n4), e8), e8);
    const __m256i shi = _mm256_madd_epi16(_mm256_maddubs_epi16(a, hi), ones);
    return _mm256_add_epi32(_mm256_slli_epi32(shi, 4), _mm256_madd_epi16(_mm256_maddubs_epi16(a, lo), ones));
  }
}

inline void store_cols(int32_t* c, __m256i v, int64_t cols) {
  if (cols == 8) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c), v);
    return;
  }
  alignas(32) int32_t tmp[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), v);
  std::copy(tmp, tmp + cols, c);
}

inline void store_cols(float* c, __m256 v, int64_t cols) {
  if (cols == 8) {
    _mm256_storeu_ps(c, v);
    return;
  }
  alignas(32) float tmp[8];
  _mm256_store_ps(tmp, v);
  std::copy(tmp, tmp + cols, c);
}

// LAYOUT: the storage (8 = one byte per code); DOT: the code width the products assume.
template <int LAYOUT, int DOT, int R>
void u8_rows(const uint8_t* A, int64_t lda, const uint8_t* panel, int64_t nsb, int h, int32_t* C, int64_t ldc,
             int64_t cols) {
  constexpr int BITS = LAYOUT;
  constexpr int NA = R == 1 ? 2 : 1;
  __m256i acc[R][NA];
  for (int r = 0; r < R; ++r)
    for (int a = 0; a < NA; ++a) acc[r][a] = _mm256_setzero_si256();
  for (int64_t sb = 0; sb < nsb; ++sb) {
    const uint8_t* p = panel + sb * 64 * BITS;
    const uint8_t* a = A + sb * kLowbitSuper;
    prefetch_ahead<BITS>(p);
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      const __m256i u = kblock<BITS>(p, j, h);
      for (int r = 0; r < R; ++r)
        acc[r][j % NA] =
            _mm256_add_epi32(acc[r][j % NA], dot4<DOT>(_mm256_set1_epi32(load4(a + r * lda + 4 * j)), u));
    }
  }
  for (int r = 0; r < R; ++r) {
    __m256i s = acc[r][0];
    for (int a = 1; a < NA; ++a) s = _mm256_add_epi32(s, acc[r][a]);
    store_cols(C + r * ldc, s, cols);
  }
}

template <int LAYOUT, int DOT>
void u8_half_rows(const uint8_t* A, int64_t lda, int64_t m, const uint8_t* panel, int64_t nsb, int h, int32_t* C,
                  int64_t ldc, int64_t cols) {
  int64_t i = 0;
  for (; i + 4 <= m; i += 4) u8_rows<LAYOUT, DOT, 4>(A + i * lda, lda, panel, nsb, h, C + i * ldc, ldc, cols);
  switch (m - i) {
    case 3: u8_rows<LAYOUT, DOT, 3>(A + i * lda, lda, panel, nsb, h, C + i * ldc, ldc, cols); break;
    case 2: u8_rows<LAYOUT, DOT, 2>(A + i * lda, lda, panel, nsb, h, C + i * ldc, ldc, cols); break;
    case 1: u8_rows<LAYOUT, DOT, 1>(A + i * lda, lda, panel, nsb, h, C + i * ldc, ldc, cols); break;
    default: break;
  }
}

template <int BITS>
void u8_panels(const uint8_t* A, int64_t lda, int64_t m, const LowbitWeights& W, int64_t p0, int64_t p1, int32_t* C,
               int64_t ldc) {
  const int64_t nsb = W.super_blocks();
  // As the AVX-512 path: many rows unpack each panel once (one byte per code, same vector order).
  const bool unpack_once = BITS < 8 && m > kLowbitFlyRows;
  std::vector<uint8_t> buf(unpack_once ? static_cast<size_t>(nsb * 64 * 8) : 0);
  for (int64_t p = p0; p < p1; ++p) {
    const uint8_t* panel = W.data.data() + p * nsb * 64 * BITS;
    if (unpack_once)
      for (int64_t sb = 0; sb < nsb; ++sb)
        for (int j = 0; j < 8; ++j)
          for (int h = 0; h < 2; ++h)
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(buf.data() + (sb * 8 + j) * 64 + 32 * h),
                                kblock<BITS>(panel + sb * 64 * BITS, j, h));
    for (int h = 0; h < 2; ++h) {
      const int64_t c0 = p * kLowbitPanel + 8 * h, cols = std::min<int64_t>(8, W.n - c0);
      if (cols <= 0) break;
      if (unpack_once) u8_half_rows<8, BITS>(A, lda, m, buf.data(), nsb, h, C + c0, ldc, cols);
      else u8_half_rows<BITS, BITS>(A, lda, m, panel, nsb, h, C + c0, ldc, cols);
    }
  }
}

template <int BITS, int R>
void f32_rows(const float* X, int64_t ldx, const LowbitWeights& W, int64_t p, int h, const float* bias, float* Y,
              int64_t ldy, int64_t cols) {
  const int64_t nsb = W.super_blocks(), G = W.groups, sbg = W.group_size / kLowbitSuper;
  const uint8_t* panel = W.data.data() + p * nsb * 64 * BITS;
  const __m256i lo8 = _mm256_set1_epi32(0xFF), magic = _mm256_set1_epi32(0x4B000000 | (BITS == 8 ? 0x80 : 0));
  __m256 y[R];
  for (int r = 0; r < R; ++r) y[r] = _mm256_setzero_ps();
  for (int64_t g = 0; g < G; ++g) {
    const int64_t at = (p * G + g) * kLowbitPanel + 8 * h;
    const __m256 zb = _mm256_loadu_ps(W.zero_p.data() + at), s = _mm256_loadu_ps(W.scale_p.data() + at);
    __m256 acc[R][4];
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < 4; ++t) acc[r][t] = _mm256_setzero_ps();
    const int64_t sb1 = std::min(nsb, (g + 1) * sbg);
    for (int64_t sb = g * sbg; sb < sb1; ++sb) {
      const uint8_t* pb = panel + sb * 64 * BITS;
      const float* x = X + sb * kLowbitSuper;
      prefetch_ahead<BITS>(pb);
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        const __m256i u = kblock<BITS>(pb, j, h);
#pragma GCC unroll 4
        for (int t = 0; t < 4; ++t) {
          const __m256i ut = t ? _mm256_srli_epi32(u, 8 * t) : u;
          const __m256 w =
              _mm256_sub_ps(_mm256_castsi256_ps(_mm256_xor_si256(_mm256_and_si256(ut, lo8), magic)), zb);
          for (int r = 0; r < R; ++r)
            acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(x[r * ldx + 4 * j + t]), w, acc[r][t]);
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      const __m256 sum = _mm256_add_ps(_mm256_add_ps(acc[r][0], acc[r][1]), _mm256_add_ps(acc[r][2], acc[r][3]));
      y[r] = _mm256_fmadd_ps(s, sum, y[r]);
    }
  }
  alignas(32) float b[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  if (bias) std::copy(bias + p * kLowbitPanel + 8 * h, bias + p * kLowbitPanel + 8 * h + cols, b);
  for (int r = 0; r < R; ++r) store_cols(Y + r * ldy, _mm256_add_ps(y[r], _mm256_load_ps(b)), cols);
}

template <int BITS>
void f32_panels(const float* X, int64_t ldx, int64_t m, const LowbitWeights& W, const float* bias, int64_t p0,
                int64_t p1, float* Y, int64_t ldy) {
  for (int64_t p = p0; p < p1; ++p)
    for (int h = 0; h < 2; ++h) {
      const int64_t c0 = p * kLowbitPanel + 8 * h, cols = std::min<int64_t>(8, W.n - c0);
      if (cols <= 0) break;
      int64_t i = 0;
      for (; i + 2 <= m; i += 2) f32_rows<BITS, 2>(X + i * ldx, ldx, W, p, h, bias, Y + i * ldy + c0, ldy, cols);
      if (i < m) f32_rows<BITS, 1>(X + i * ldx, ldx, W, p, h, bias, Y + i * ldy + c0, ldy, cols);
    }
}

}  // namespace

void gemm_lowbit_u8_avx2(const uint8_t* A, int64_t lda, int64_t m, const LowbitWeights& W, int64_t p0, int64_t p1,
                         int32_t* C, int64_t ldc) {
  with_lowbit_width(W.bits, [&](auto b) { u8_panels<decltype(b)::value>(A, lda, m, W, p0, p1, C, ldc); });
}

void gemm_lowbit_f32_avx2(const float* X, int64_t ldx, int64_t m, const LowbitWeights& W, const float* bias,
                          int64_t p0, int64_t p1, float* Y, int64_t ldy) {
  with_lowbit_width(W.bits, [&](auto b) { f32_panels<decltype(b)::value>(X, ldx, m, W, bias, p0, p1, Y, ldy); });
}

}  // namespace mixq::kernels
