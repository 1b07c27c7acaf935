// The integer GEMM with the layer's epilogue fused into its register tiles: each tile's int32 sums
// get the zero-point terms, rescale, bias, activation clamp, residual sum and requantization
// (kernels/epilogue.h) while they are still in registers, and only the uint8 codes (or floats)
// reach memory: no int32 rows stored and read back, no second pass. No libtorch.
//
//   y = epilogue(gemm_u8s8(A, B))   exactly, bit for bit (the reference below is that sequence)
//
// `e` is the epilogue of the m rows of this call (e.acc / e.lda unused; e.m, e.n = m, B.n; rsum and
// sum indexed from the call's first row). Output: codes of `out.q` into out.u8 when out.q is set,
// else floats into out.f32; row stride out.ldy. Fused paths: AVX-512 VNNI (plain and implicit
// GEMM; B packed for it): gemm_epi_supported() says when; the callers run gemm_u8s8 and
// epilogue_u8/f32 otherwise.
#pragma once

#include <cstdint>

#include "kernels/epilogue.h"
#include "kernels/gemm_u8s8.h"

namespace mixq::kernels {

struct EpiOut {
  const OutQuant* q = nullptr;  // codes of this quantizer, or null: floats
  uint8_t* u8 = nullptr;
  float* f32 = nullptr;
  int64_t ldy = 0;
};

bool gemm_epi_supported(const PackedB& B);

// A: m rows of lda >= kp bytes (as gemm_u8s8). Rows split over `threads` as gemm_u8s8 does.
void gemm_u8s8_epi(const uint8_t* A, int64_t lda, int64_t m, const PackedB& B, const EpiRows& e, const EpiOut& out,
                   int threads);
// The implicit form (gemm_u8s8_indirect's rows), on one thread.
void gemm_u8s8_indirect_epi(const IndirectA& a, int64_t m, const PackedB& B, const EpiRows& e, const EpiOut& out);

// The reference: gemm_u8s8_ref on the unpacked B [n][k], then epilogue_u8_ref / epilogue_f32_ref.
void gemm_u8s8_epi_ref(const uint8_t* A, int64_t lda, int64_t m, const int8_t* B, int64_t n, int64_t k,
                       const EpiRows& e, const EpiOut& out);

// Per-path kernels (gemm_epi_avx512.cpp): rows [m0, m1) of the plain (a null) or implicit form.
void gemm_u8s8_epi_avx512(const uint8_t* A, int64_t lda, const IndirectA* a, int64_t m0, int64_t m1,
                          const PackedB& B, const EpiRows& e, const EpiOut& out);

}  // namespace mixq::kernels
