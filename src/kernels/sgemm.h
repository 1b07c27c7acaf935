// Float GEMM for what stays float (and for quantized layers whose scheme has no integer path):
//   C[m][n] (+)= sum_k A[m][k] * B[k][n], row-major with leading dimensions. No libtorch.
// One loop order (m, k, n) that compilers vectorise along n without reassociating sums, so the
// result does not depend on the ISA the file is compiled for beyond FMA contraction.
#pragma once

#include <cstdint>

namespace mixq::kernels {

// accumulate: C += A*B, else C = A*B. Rows of C are split over `threads`.
void sgemm(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, int64_t m, int64_t n,
           int64_t k, bool accumulate, int threads);

}  // namespace mixq::kernels
