// Low-bit weight GEMV/GEMM with on-the-fly unpacking: the weight stays at b bits per element in
// memory (b in {2, 3, 4, 5, 6, 8}) and is unpacked in registers, so a batch-1 layer reads b/8 of
// the bytes the int8 path (gemm_u8s8) reads. No libtorch.
//
// Weight: n output rows x k, unsigned codes u = q - qmin in [0, 2^b). Two kernels on one packed form:
//   integer: C[i][j] = sum_k A[i][k] * (u[j][k] - code_offset)      A uint8 codes, C exact int32
//            (code_offset = 128 at 8 bits, so the stored byte fits vpdpbusd's signed operand; 0
//            below. The zero-point corrections are the caller's epilogue, as for gemm_u8s8.)
//   float:   Y[i][j] = bias[j] + sum_g s[j][g] * sum_{k in group g} X[i][k] * (u[j][k] - z[j][g])
//            (z = zero point in the u domain, i.e. zp - qmin; per-tensor / per-channel = one group)
//
// Packed layout (one for every ISA; pack_lowbit):
//   rows in panels of 16 (the last one padded with u = 0), k in super-blocks of 32 (kp = k rounded
//   up to 32, padded with u = 0). Panels are stored one after the other, each as kp/32 super-blocks
//   of 64 * b bytes: [n/16][kp/32][64*b].
//   A super-block holds 8 "k-blocks" of 4 k x 16 rows. Unpacked, k-block j is one 64-byte vector in
//   gemm_u8s8's AVX-512 order [16 rows][4 k]: byte 4r + t = u(row r, k = 32 sb + 4 j + t). So one
//   vpdpbusd against a broadcast of 4 activation bytes adds 4 k to 16 outputs, and for the float
//   kernel each 32-bit lane is one row (shift by 8t picks k = 4j + t): lanes are output rows.
//   The b bits are split into bit planes like llama.cpp's k-quants: 2 and 4 bits are native,
//   3 = 2 + 1, 5 = 4 + 1, 6 = 4 + 2, 8 = 8 (stored as u ^ 0x80 = the int8 u - 128). Planes follow
//   each other inside the super-block, low bits first. A w-bit plane is w vectors of 64 bytes; bits
//   [f*w, (f+1)*w) of byte 4r + t of vector v hold k-block j = v * (8/w) + f. Unpacking a k-block
//   is one shift + one and per plane on whole 64-byte vectors (64 weights at a time), and a
//   super-block of 64*b bytes is exactly b bits per weight: nothing else is stored per block.
//   Why 32 k per super-block: the 1-bit plane needs 8 k-blocks to fill its bytes; why 16 rows: one
//   zmm of int32/float lanes (AVX2 takes a panel as two halves of 8 rows).
//
// Float summation order (the specification, followed bit for bit by every path, so the ISA paths
// give identical outputs): per row, per group g, four partial sums acc_t (t = k mod 4), each
//   acc_t = fma(x[k], float(u - z), acc_t) in increasing k; group sum = (acc_0 + acc_1) + (acc_2 +
//   acc_3); y = fma(s[g], group sum, y) in increasing g from y = 0; output y + bias. Four partial
//   sums give the AVX paths independent FMA chains without reassociating anything.
// Float groups must be whole super-blocks (group_size a multiple of 32) or one group per row
// (lowbit_float_unsupported says why not otherwise).
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/isa.h"

namespace mixq::kernels {

constexpr int64_t kLowbitPanel = 16, kLowbitSuper = 32;
// Integer kernel: up to this many rows unpack each k-block in registers per chunk of 4 rows (the
// unpacking then costs about what the int8 GEMM loses to its single accumulator chain); more
// rows unpack each panel once into a 16 x kp int8 buffer and run the int8 tile over it (measured:
// BM_LinearLowbit vs BM_LinearInt8 in bench/runtime_kernels_bench.cpp).
constexpr int64_t kLowbitFlyRows = 16;
// How far ahead (bytes) the SIMD paths prefetch the weight stream.
constexpr int64_t kLowbitPrefetch = 1024;

struct LowbitWeights {
  int bits = 4;
  int64_t n = 0, k = 0, kp = 0;  // kp: k rounded up to 32
  int32_t code_offset = 0;       // the integer kernel's w = u - code_offset (128 at 8 bits)
  std::vector<uint8_t> data;     // [ceil(n/16)][kp/32][64*bits] (see above)
  std::vector<int32_t> row_sums; // [n] sum_k (u - code_offset), for the zero-point correction
  // Float kernel parameters (set_lowbit_dequant): groups of `group_size` k per row (>= k: one).
  int64_t group_size = 0, groups = 0;
  std::vector<float> scale_p;  // [panels][groups][16] s
  std::vector<float> zero_p;   // [panels][groups][16] 2^23 + z: float(u - z) is (2^23 + u) - this, exact

  int64_t panels() const { return (n + kLowbitPanel - 1) / kLowbitPanel; }
  int64_t super_blocks() const { return kp / kLowbitSuper; }
  // Bytes this weight holds (codes, row sums, float parameters): what a runtime layer keeps.
  int64_t bytes() const;
};

inline int64_t lowbit_kp(int64_t k) { return (k + kLowbitSuper - 1) / kLowbitSuper * kLowbitSuper; }
inline bool lowbit_bits_supported(int bits) { return bits >= 2 && bits <= 8 && bits != 7; }

// u: [n][k] codes, each < 2^bits.
LowbitWeights pack_lowbit(const uint8_t* u, int64_t n, int64_t k, int bits);
// The codes back as [n][k] (the round trip tests check pack -> unpack is exact).
void unpack_lowbit(const LowbitWeights& W, uint8_t* u);

// "" when the float kernel runs these groups, else why not (e.g. "group size 48 is not a
// multiple of 32").
std::string lowbit_float_unsupported(int64_t group_size, int64_t k);
// scale, zero: [n][groups] with groups = ceil(k / group_size) (group_size >= k: one per row); zero in
// the u domain (zero point - qmin).
void set_lowbit_dequant(LowbitWeights& W, const float* scale, const int32_t* zero, int64_t group_size);

// Integer kernel. A: m rows of lda >= kp bytes, zeros in [k, kp); C: m rows of ldc >= n. Output
// panels are split over `threads` (>= 1).
void gemm_lowbit_u8(const uint8_t* A, int64_t lda, int64_t m, const LowbitWeights& W, int32_t* C, int64_t ldc,
                    Isa isa, int threads);
// Float kernel. X: m rows of ldx >= k floats; bias: n values or null; Y: m rows of ldy >= n.
void gemm_lowbit_f32(const float* X, int64_t ldx, int64_t m, const LowbitWeights& W, const float* bias, float* Y,
                     int64_t ldy, Isa isa, int threads);

// The references (the specification): plain loops on the unpacked codes u [n][k].
void gemm_lowbit_u8_ref(const uint8_t* A, int64_t lda, int64_t m, const uint8_t* u, int64_t n, int64_t k, int bits,
                        int32_t* C, int64_t ldc);
void gemm_lowbit_f32_ref(const float* X, int64_t ldx, int64_t m, const uint8_t* u, int64_t n, int64_t k,
                         const float* scale, const int32_t* zero, int64_t group_size, const float* bias, float* Y,
                         int64_t ldy);

// Calls f(std::integral_constant<int, B>{}) for the stored width B == bits (2, 3, 4, 5, 6, 8): the
// ISA files instantiate their kernels once per width through it, so the widths live in one place.
template <typename F>
void with_lowbit_width(int bits, F&& f) {
  switch (bits) {
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 5: f(std::integral_constant<int, 5>{}); break;
    case 6: f(std::integral_constant<int, 6>{}); break;
    case 8: f(std::integral_constant<int, 8>{}); break;
    default: break;
  }
}

// Per-path kernels (gemv_lowbit_avx2.cpp / _avx512.cpp, own -m flags, called after
// isa_supported()): rows [0, m) of output panels [p0, p1). X here is padded to kp (zeros).
void gemm_lowbit_u8_avx2(const uint8_t* A, int64_t lda, int64_t m, const LowbitWeights& W, int64_t p0, int64_t p1,
                         int32_t* C, int64_t ldc);
void gemm_lowbit_u8_avx512(const uint8_t* A, int64_t lda, int64_t m, const LowbitWeights& W, int64_t p0, int64_t p1,
                           int32_t* C, int64_t ldc);
void gemm_lowbit_f32_avx2(const float* X, int64_t ldx, int64_t m, const LowbitWeights& W, const float* bias,
                          int64_t p0, int64_t p1, float* Y, int64_t ldy);
void gemm_lowbit_f32_avx512(const float* X, int64_t ldx, int64_t m, const LowbitWeights& W, const float* bias,
                            int64_t p0, int64_t p1, float* Y, int64_t ldy);

}  // namespace mixq::kernels
