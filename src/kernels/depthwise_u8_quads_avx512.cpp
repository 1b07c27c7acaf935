// The tap-quad depthwise kernel (depthwise_u8.h; compiled with the AVX-512 flags, called only when
// the CPU has AVX-512 VNNI): input rows interleaved by groups of four kx taps (16 channels x 4 taps
// per 64 bytes, built with two rounds of byte / word unpacks), then one vpdpbusd per kernel row and
// tap group for 16 channels of an output pixel; the sums are stored, or go through the layer's
// epilogue in registers (epilogue_avx512.h) straight to codes.
#include <immintrin.h>

#include <algorithm>
#include <climits>

#include "kernels/depthwise_u8.h"
#include "kernels/epilogue_avx512.h"
#include "kernels/requant_avx512.h"

namespace mixq::kernels {

namespace {

// Input row iy interleaved: for output column ox and tap group g, the 4 taps kx = 4g..4g+3 of
// every channel side by side (taps outside the image or past KW read `zrow`, the code of 0.0).
void build_row(const uint8_t* a, const DwQuads& q, const uint8_t* zrow, const DepthwiseShape& s, int64_t iy,
               uint8_t* dst) {
  const int64_t C = s.C, CB = q.CB;
  for (int64_t ox = 0; ox < s.OW; ++ox)
    for (int64_t g = 0; g < q.nq; ++g) {
      const uint8_t* src[4];
      for (int t = 0; t < 4; ++t) {
        const int64_t kx = 4 * g + t, ix = ox * s.SW - s.PL + kx * s.DW;
        src[t] = kx < s.KW && ix >= 0 && ix < s.W ? a + (iy * s.W + ix) * C : zrow;
      }
      uint8_t* d = dst + (ox * q.nq + g) * CB * 64;
      for (int64_t cb = 0; cb < CB; ++cb, d += 64) {
        const int64_t left = C - cb * 16;
        const __mmask16 k = left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
        const __m128i x0 = _mm_maskz_loadu_epi8(k, src[0] + cb * 16), x1 = _mm_maskz_loadu_epi8(k, src[1] + cb * 16);
        const __m128i x2 = _mm_maskz_loadu_epi8(k, src[2] + cb * 16), x3 = _mm_maskz_loadu_epi8(k, src[3] + cb * 16);
        const __m128i l01 = _mm_unpacklo_epi8(x0, x1), h01 = _mm_unpackhi_epi8(x0, x1);
        const __m128i l23 = _mm_unpacklo_epi8(x2, x3), h23 = _mm_unpackhi_epi8(x2, x3);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(d), _mm_unpacklo_epi16(l01, l23));       // channels 0-3
        _mm_storeu_si128(reinterpret_cast<__m128i*>(d + 16), _mm_unpackhi_epi16(l01, l23));  // 4-7
        _mm_storeu_si128(reinterpret_cast<__m128i*>(d + 32), _mm_unpacklo_epi16(h01, h23));  // 8-11
        _mm_storeu_si128(reinterpret_cast<__m128i*>(d + 48), _mm_unpackhi_epi16(h01, h23));  // 12-15
      }
    }
}

// The sums of one output row from the KH interleaved rows `rp`, G = KH * nq tap groups (known at
// compile time; 0: at run time), handed to sink.put(ox, c0, mask, sums). 4 output columns at a
// time with independent sums (one vpdpbusd chain alone would wait out its latency), channel blocks
// inside, so the outputs are written in order (column-major writes across a wide row left the
// stores waiting on L2). SPLIT: the h and l weights (DwQuads), 2 * sum(a h) + sum(a l).
template <int G, bool SPLIT, typename Sink>
void sum_row(const uint8_t* const* rp, const DwQuads& q, const DepthwiseShape& s, Sink& sink) {
  const int64_t C = s.C, CB = q.CB, px = q.nq * CB * 64, OW = s.OW, groups = G ? G : q.KH * q.nq;
  const uint8_t* gp[64 * 4];  // tap group g's data for output column 0
  for (int64_t g = 0; g < groups; ++g) gp[g] = rp[g / q.nq] + (g % q.nq) * CB * 64;
  const int8_t* w4 = q.w4.data();
  const int8_t* w4l = SPLIT ? q.w4l.data() : nullptr;
  constexpr int U = SPLIT ? 2 : 4;  // columns per step (SPLIT: two sums per column)
  for (int64_t ox = 0; ox < OW; ox += U) {
    const int u_n = static_cast<int>(OW - ox < U ? OW - ox : U);
    for (int64_t cb = 0; cb < CB; ++cb) {
      const __m512i nz = _mm512_loadu_si512(q.nz.data() + cb * 16);
      __m512i sum[U], lo[U];
      for (int u = 0; u < U; ++u) {
        sum[u] = SPLIT ? _mm512_setzero_si512() : nz;
        lo[u] = _mm512_setzero_si512();
      }
      for (int64_t g = 0; g < groups; ++g) {
        const __m512i w = _mm512_loadu_si512(w4 + (g * CB + cb) * 64);
        __m512i wl = _mm512_setzero_si512();
        if (SPLIT) wl = _mm512_loadu_si512(w4l + (g * CB + cb) * 64);
        for (int u = 0; u < U; ++u) {
          if (u >= u_n) break;
          const __m512i x = _mm512_loadu_si512(gp[g] + (ox + u) * px + cb * 64);
          sum[u] = _mm512_dpbusd_epi32(sum[u], x, w);
          if (SPLIT) lo[u] = _mm512_dpbusd_epi32(lo[u], x, wl);
        }
      }
      const int64_t left = C - cb * 16;
      const __mmask16 k = left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
      for (int u = 0; u < u_n; ++u) {
        __m512i v = sum[u];
        if (SPLIT) v = _mm512_add_epi32(_mm512_add_epi32(_mm512_slli_epi32(v, 1), lo[u]), nz);
        sink.put(ox + u, cb * 16, k, v);
      }
    }
  }
}

template <bool SPLIT, typename Sink>
void sum_row_groups(const uint8_t* const* rp, const DwQuads& q, const DepthwiseShape& s, Sink& sink) {
  switch (q.KH * q.nq) {  // 3x3 and 5x5 (two groups per row) kernels, and 1-row kernels up to 4 wide
    case 1: sum_row<1, SPLIT>(rp, q, s, sink); break;
    case 3: sum_row<3, SPLIT>(rp, q, s, sink); break;
    case 10: sum_row<10, SPLIT>(rp, q, s, sink); break;
    default: sum_row<0, SPLIT>(rp, q, s, sink); break;
  }
}

template <typename Sink>
void run_row(const uint8_t* const* rp, const DwQuads& q, const DepthwiseShape& s, Sink& sink) {
  if (q.split) sum_row_groups<true>(rp, q, s, sink);
  else sum_row_groups<false>(rp, q, s, sink);
}

// The int32 sums into acc [OW][C].
struct StoreAcc {
  int32_t* acc;
  int64_t C;
  void put(int64_t ox, int64_t c0, __mmask16 k, __m512i v) { _mm512_mask_storeu_epi32(acc + ox * C + c0, k, v); }
};

// The epilogue on the sums in registers (epilogue_avx512.h), codes into y [OW][ldy].
struct StoreCodes {
  avx512::EpiVec ev;
  avx512::Requant rq;
  uint8_t* y;
  int64_t ldy;
  void put(int64_t ox, int64_t c0, __mmask16 k, __m512i v) {
    const __m128i c = rq(ev.finish16(v, ox, c0, k));
    if (k == avx512::kAll16) _mm_storeu_si128(reinterpret_cast<__m128i*>(y + ox * ldy + c0), c);
    else _mm_mask_storeu_epi8(y + ox * ldy + c0, k, c);
  }
};

// Row ky's interleaved input row into rp[ky]: found among the slots, else built into a slot no
// other kernel row of this output row uses (KH slots, at most KH distinct rows needed).
void rows_for(const uint8_t* a, const DwQuads& q, const uint8_t* zrow, const DepthwiseShape& s, int64_t oy,
              DwQuadRows& rows, const uint8_t** rp) {
  const int64_t KH = s.KH, row_bytes = s.OW * q.nq * q.CB * 64;
  if (rows.row_bytes != row_bytes || static_cast<int64_t>(rows.tag.size()) != KH || rows.pad[0] != zrow[0]) {
    rows.buf.resize(static_cast<size_t>(KH * row_bytes));
    rows.tag.assign(static_cast<size_t>(KH), INT64_MIN);
    rows.pad.assign(static_cast<size_t>(row_bytes), zrow[0]);  // every tap the code of 0.0
    rows.row_bytes = row_bytes;
  }
  if (rows.img != a) {
    std::fill(rows.tag.begin(), rows.tag.end(), INT64_MIN);
    rows.img = a;
  }
  bool used[64] = {};
  int64_t want[64];
  for (int64_t ky = 0; ky < KH; ++ky) {
    want[ky] = oy * s.SH - s.PT + ky * s.DH;
    rp[ky] = nullptr;
    if (want[ky] < 0 || want[ky] >= s.H) {
      rp[ky] = rows.pad.data();
      continue;
    }
    for (int64_t sl = 0; sl < KH; ++sl)
      if (rows.tag[sl] == want[ky]) {
        rp[ky] = rows.buf.data() + sl * row_bytes;
        used[sl] = true;
      }
  }
  for (int64_t ky = 0; ky < KH; ++ky) {
    if (rp[ky]) continue;
    int64_t sl = 0;
    while (used[sl]) ++sl;
    used[sl] = true;
    rows.tag[sl] = want[ky];
    build_row(a, q, zrow, s, want[ky], rows.buf.data() + sl * row_bytes);
    rp[ky] = rows.buf.data() + sl * row_bytes;
    for (int64_t k2 = ky + 1; k2 < KH; ++k2)  // (a dilation of 0 rows cannot repeat a row; be safe)
      if (!rp[k2] && want[k2] == want[ky]) rp[k2] = rp[ky];
  }
}

}  // namespace

void depthwise_u8_acc_row_quads_avx512(const uint8_t* a, const DwQuads& q, const uint8_t* zrow,
                                       const DepthwiseShape& s, int64_t oy, DwQuadRows& rows, int32_t* acc) {
  const uint8_t* rp[64];
  rows_for(a, q, zrow, s, oy, rows, rp);
  StoreAcc sink{acc, s.C};
  run_row(rp, q, s, sink);
}

void depthwise_u8_row_quads_epi_avx512(const uint8_t* a, const DwQuads& q, const uint8_t* zrow,
                                       const DepthwiseShape& s, int64_t oy, DwQuadRows& rows, const EpiRows& e,
                                       const OutQuant& oq, uint8_t* y, int64_t ldy) {
  const uint8_t* rp[64];
  rows_for(a, q, zrow, s, oy, rows, rp);
  avx512::EpiVec ev(e);
  const avx512::Requant rq = avx512::u8_requant(e, oq, ev);
  StoreCodes sink{ev, rq, y, ldy};
  run_row(rp, q, s, sink);
}

}  // namespace mixq::kernels
