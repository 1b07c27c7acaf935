#include "kernels/sgemm.h"

#include <algorithm>

#include "kernels/sgemm_impl.h"

namespace mixq::kernels {

void sgemm_rows_ref(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, int64_t m0,
                    int64_t m1, int64_t n, int64_t k, bool accumulate) {
  MIXQ_SGEMM_ROWS_BODY
}

namespace {

void rows(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, int64_t m0, int64_t m1,
          int64_t n, int64_t k, bool accumulate, Isa isa) {
  switch (isa) {
    case Isa::kRef: sgemm_rows_ref(A, lda, B, ldb, C, ldc, m0, m1, n, k, accumulate); break;
    case Isa::kAvx2: sgemm_rows_avx2(A, lda, B, ldb, C, ldc, m0, m1, n, k, accumulate); break;
    case Isa::kAvx512: sgemm_rows_avx512(A, lda, B, ldb, C, ldc, m0, m1, n, k, accumulate); break;
  }
}

}  // namespace

void sgemm(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, int64_t m, int64_t n,
           int64_t k, bool accumulate, int threads, Isa isa) {
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, m * n * k / 65536)));
  if (nt <= 1 || m < 2) {
    rows(A, lda, B, ldb, C, ldc, 0, m, n, k, accumulate, isa);
    return;
  }
  const int ntm = static_cast<int>(std::min<int64_t>(nt, m));
#pragma omp parallel for num_threads(ntm) schedule(static)
  for (int t = 0; t < ntm; ++t) rows(A, lda, B, ldb, C, ldc, m * t / ntm, m * (t + 1) / ntm, n, k, accumulate, isa);
}

}  // namespace mixq::kernels
