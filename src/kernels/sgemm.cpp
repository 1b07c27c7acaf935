#include "kernels/sgemm.h"

#include <algorithm>

namespace mixq::kernels {

namespace {

void rows(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, int64_t m0, int64_t m1,
          int64_t n, int64_t k, bool accumulate) {
  for (int64_t i = m0; i < m1; ++i) {
    float* c = C + i * ldc;
    if (!accumulate) std::fill(c, c + n, 0.0f);
    const float* a = A + i * lda;
    for (int64_t q = 0; q < k; ++q) {
      const float av = a[q];
      const float* b = B + q * ldb;
      for (int64_t j = 0; j < n; ++j) c[j] += av * b[j];
    }
  }
}

}  // namespace

void sgemm(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, int64_t m, int64_t n,
           int64_t k, bool accumulate, int threads) {
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, m * n * k / 65536)));
  if (nt <= 1 || m < 2) {
    rows(A, lda, B, ldb, C, ldc, 0, m, n, k, accumulate);
    return;
  }
  const int ntm = static_cast<int>(std::min<int64_t>(nt, m));
#pragma omp parallel for num_threads(ntm) schedule(static)
  for (int t = 0; t < ntm; ++t) rows(A, lda, B, ldb, C, ldc, m * t / ntm, m * (t + 1) / ntm, n, k, accumulate);
}

}  // namespace mixq::kernels
