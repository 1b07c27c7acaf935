// Integer GEMM for layers whose activations are 8-bit (or fewer) codes:
//   C[m][n] = sum_k A[m][k] * B[n][k],  A uint8 (activation codes), B int8 (weight codes shifted
//   to int8), C int32 (exact: |a*b| <= 255*128 and K <= 2^16 cannot overflow).
// The zero-point corrections and float rescaling are the caller's epilogue (runtime/qlinear).
// No libtorch.
//
// Paths: ref (plain loops, the specification), avx2 (u8/s8 widened to int16, vpmaddwd: exact, no
// saturation, unlike vpmaddubsw; with weights in [-64, 63] vpmaddubsw is exact too and takes
// over: PackedB::narrow), avx512 (AVX-512 VNNI vpdpbusd, 64 MACs per instruction).
// B is packed once per weight for the chosen path (PackedB); A rows are read in steps of 4 bytes,
// so the caller pads every A row to `kp` = PackedB::kp bytes with zeros (lda >= kp).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/isa.h"

namespace mixq::kernels {

struct PackedB {
  Isa isa = Isa::kRef;
  int64_t n = 0, k = 0, kp = 0;      // kp: k rounded up to 4
  std::vector<int8_t> b8;            // ref: [n][kp]; avx512: panels [n/16][kp/4][16][4]; avx2 narrow: [n/8][kp/4][8][4]
  std::vector<int16_t> b16;          // avx2: panels [n/8][kp/2][8][2]
  // avx2 only: every weight in [-64, 63] (weights of 7 bits or fewer), so vpmaddubsw's int16 pair
  // sums cannot saturate (2 * 255 * 64 < 32768): B is kept as int8 quads in b8 instead of b16.
  bool narrow = false;
  std::vector<int32_t> row_sums;     // sum_k B[n][k], for the zero-point correction
};

inline int64_t gemm_kp(int64_t k) { return (k + 3) / 4 * 4; }

// B: [n][k] row-major int8.
PackedB pack_b(const int8_t* B, int64_t n, int64_t k, Isa isa);

// A: m rows of lda >= kp bytes (zeros in [k, kp)); C: m rows of ldc >= n int32. Rows are split
// over `threads` threads (>= 1).
void gemm_u8s8(const uint8_t* A, int64_t lda, int64_t m, const PackedB& B, int32_t* C, int64_t ldc, int threads);

// Threads gemm_u8s8 uses for m rows of `row_macs` multiply-adds each (1..threads).
int gemm_split_threads(int threads, int64_t m, int64_t row_macs);

// Implicit GEMM (a convolution without im2col): row i of A is the concatenation of `taps` segments
// of `seg` bytes, segment t at base + pix[i * taps + t] * stride, or the `pad` bytes (the code of
// 0.0) when that index is negative. k = taps * seg must equal B.k, and seg must be a multiple of 4
// (so the kernel's 4-byte steps never straddle two segments). AVX-512 only (B packed for it):
// indirect_supported() says when; other paths build im2col rows and call gemm_u8s8.
struct IndirectA {
  const uint8_t* base = nullptr;
  const int32_t* pix = nullptr;  // [m][taps]
  int64_t taps = 0, seg = 0, stride = 0;
  const uint8_t* pad = nullptr;  // seg bytes
};
bool indirect_supported(const PackedB& B, int64_t seg);
void gemm_u8s8_indirect(const IndirectA& a, int64_t m, const PackedB& B, int32_t* C, int64_t ldc, int threads);
void gemm_u8s8_indirect_avx512(const IndirectA& a, int64_t m0, int64_t m1, const PackedB& B, int32_t* C,
                               int64_t ldc);
// The reference of the implicit form (gathers each row, then gemm_u8s8_ref), for tests.
void gemm_u8s8_indirect_ref(const IndirectA& a, int64_t m, const int8_t* B, int64_t n, int32_t* C, int64_t ldc);
// The reference, on the unpacked B [n][k] (tests compare every path with it exactly).
void gemm_u8s8_ref(const uint8_t* A, int64_t lda, int64_t m, const int8_t* B, int64_t n, int64_t k, int32_t* C,
                   int64_t ldc);

// Per-path kernels (gemm_u8s8_avx2.cpp / gemm_u8s8_avx512.cpp, compiled with their own -m flags
// and only called after isa_supported()): rows [m0, m1).
void gemm_u8s8_avx2(const uint8_t* A, int64_t lda, int64_t m0, int64_t m1, const PackedB& B, int32_t* C, int64_t ldc);
void gemm_u8s8_avx512(const uint8_t* A, int64_t lda, int64_t m0, int64_t m1, const PackedB& B, int32_t* C,
                      int64_t ldc);

}  // namespace mixq::kernels

namespace mixq::kernels {
// For the micro-benchmarks: `iters` x 8 independent vpdpbusd chains (AVX-512 VNNI), returning a
// value that depends on every result so the loop is not removed. MACs done = iters * 8 * 64.
int32_t vnni_peak_loop(int64_t iters);
}  // namespace mixq::kernels
