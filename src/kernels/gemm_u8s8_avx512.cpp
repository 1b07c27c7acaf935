// AVX-512 VNNI path of gemm_u8s8 (compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vnni;
// called only when the CPU has them): gemm_tile_avx512.h's tiles, storing the int32 sums.
#include <immintrin.h>

#include "kernels/gemm_tile_avx512.h"
#include "kernels/gemm_u8s8.h"

namespace mixq::kernels {

namespace {

// Stores the sums: C[row][col] (int32, row stride ldc).
struct StoreSums {
  int32_t* C;
  int64_t ldc;
  template <int R, int NP>
  void put(const __m512i (&acc)[R][NP], int64_t i, int64_t col, __mmask16 last) {
    for (int r = 0; r < R; ++r)
      for (int p = 0; p < NP; ++p)
        _mm512_mask_storeu_epi32(C + (i + r) * ldc + col + p * 16,
                                 p == NP - 1 ? last : static_cast<__mmask16>(0xFFFF), acc[r][p]);
  }
};

}  // namespace

void gemm_u8s8_indirect_avx512(const IndirectA& a, int64_t m0, int64_t m1, const PackedB& B, int32_t* C,
                               int64_t ldc) {
  StoreSums sink{C, ldc};
  avx512::run_tiles(nullptr, 0, &a, m0, m1, B, sink);
}

void gemm_u8s8_avx512(const uint8_t* A, int64_t lda, int64_t m0, int64_t m1, const PackedB& B, int32_t* C,
                      int64_t ldc) {
  StoreSums sink{C, ldc};
  avx512::run_tiles(A, lda, nullptr, m0, m1, B, sink);
}

}  // namespace mixq::kernels

namespace mixq::kernels {

int32_t vnni_peak_loop(int64_t iters) {
  __m512i acc[8];
  for (int r = 0; r < 8; ++r) acc[r] = _mm512_set1_epi32(r);
  const __m512i a = _mm512_set1_epi32(0x01010101), b = _mm512_set1_epi32(0x02020202);
  for (int64_t i = 0; i < iters; ++i)
    for (int r = 0; r < 8; ++r) acc[r] = _mm512_dpbusd_epi32(acc[r], a, b);
  __m512i s = acc[0];
  for (int r = 1; r < 8; ++r) s = _mm512_add_epi32(s, acc[r]);
  return _mm512_reduce_add_epi32(s);
}

}  // namespace mixq::kernels
