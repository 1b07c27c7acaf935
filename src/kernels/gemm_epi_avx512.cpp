// The AVX-512 VNNI GEMM with the fused epilogue (gemm_epi.h; compiled with the AVX-512 flags,
// called only when the CPU has them): gemm_tile_avx512.h's tiles, whose finished accumulators go
// through epilogue_avx512.h's arithmetic and requant_avx512.h's requantization straight to codes
// (or floats), the same operations in the same order as epilogue_u8_avx512 on stored sums.
#include <immintrin.h>

#include "kernels/epilogue_avx512.h"
#include "kernels/gemm_epi.h"
#include "kernels/gemm_tile_avx512.h"
#include "kernels/requant_avx512.h"

namespace mixq::kernels {

namespace {

using avx512::kAll16;

// Codes of a tile's rows: a full group of 4 panels is one 64-byte store per row (packed as
// epilogue_u8_avx512 packs), partial groups 16 masked bytes per panel.
struct StoreCodes {
  avx512::EpiVec ev;
  avx512::Requant rq;
  uint8_t* y;
  int64_t ldy;
  template <int R, int NP>
  void put(const __m512i (&acc)[R][NP], int64_t i, int64_t col, __mmask16 last) {
    for (int r = 0; r < R; ++r) {
      uint8_t* yr = y + (i + r) * ldy + col;
      if constexpr (NP == 4) {
        if (last == kAll16) {
          _mm512_storeu_si512(yr, avx512::pack64(rq.codes32(ev.finish16(acc[r][0], i + r, col, kAll16)),
                                                 rq.codes32(ev.finish16(acc[r][1], i + r, col + 16, kAll16)),
                                                 rq.codes32(ev.finish16(acc[r][2], i + r, col + 32, kAll16)),
                                                 rq.codes32(ev.finish16(acc[r][3], i + r, col + 48, kAll16))));
          continue;
        }
      }
      for (int p = 0; p < NP; ++p) {
        const __mmask16 k = p == NP - 1 ? last : kAll16;
        const __m128i c = rq(ev.finish16(acc[r][p], i + r, col + p * 16, k));
        if (k == kAll16) _mm_storeu_si128(reinterpret_cast<__m128i*>(yr + p * 16), c);
        else _mm_mask_storeu_epi8(yr + p * 16, k, c);
      }
    }
  }
};

struct StoreFloats {
  avx512::EpiVec ev;
  float* y;
  int64_t ldy;
  template <int R, int NP>
  void put(const __m512i (&acc)[R][NP], int64_t i, int64_t col, __mmask16 last) {
    for (int r = 0; r < R; ++r)
      for (int p = 0; p < NP; ++p) {
        const __mmask16 k = p == NP - 1 ? last : kAll16;
        _mm512_mask_storeu_ps(y + (i + r) * ldy + col + p * 16, k, ev.finish16(acc[r][p], i + r, col + p * 16, k));
      }
  }
};

}  // namespace

void gemm_u8s8_epi_avx512(const uint8_t* A, int64_t lda, const IndirectA* a, int64_t m0, int64_t m1,
                          const PackedB& B, const EpiRows& e, const EpiOut& out) {
  if (out.q) {
    avx512::EpiVec ev(e);
    const avx512::Requant rq = avx512::u8_requant(e, *out.q, ev);
    StoreCodes sink{ev, rq, out.u8, out.ldy};
    avx512::run_tiles(A, lda, a, m0, m1, B, sink);
  } else {
    StoreFloats sink{avx512::EpiVec(e), out.f32, out.ldy};
    avx512::run_tiles(A, lda, a, m0, m1, B, sink);
  }
}

}  // namespace mixq::kernels
