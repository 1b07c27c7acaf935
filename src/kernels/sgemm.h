// Float GEMM for what stays float (and for quantized layers whose scheme has no integer path):
//   C[m][n] (+)= sum_k A[m][k] * B[k][n], row-major with leading dimensions. No libtorch.
// One loop order (m, k, n) that compilers vectorise along n without reassociating sums; the same
// loop is compiled for baseline x86-64, AVX2 and AVX-512 with FMA contraction off, so every path
// gives bit-identical results (each c[j] sees the same multiplies and adds in the same order).
#pragma once

#include <cstdint>

#include "kernels/isa.h"

namespace mixq::kernels {

// accumulate: C += A*B, else C = A*B. Rows of C are split over `threads`.
void sgemm(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, int64_t m, int64_t n,
           int64_t k, bool accumulate, int threads, Isa isa = Isa::kRef);

// Rows [m0, m1) on one path (sgemm_avx2.cpp / sgemm_avx512.cpp are compiled with their -m flags).
void sgemm_rows_ref(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, int64_t m0,
                    int64_t m1, int64_t n, int64_t k, bool accumulate);
void sgemm_rows_avx2(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, int64_t m0,
                     int64_t m1, int64_t n, int64_t k, bool accumulate);
void sgemm_rows_avx512(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, int64_t m0,
                       int64_t m1, int64_t n, int64_t k, bool accumulate);

}  // namespace mixq::kernels
