// The body of the sgemm row loop, included once per ISA file (see sgemm.h).
#pragma once

#include <algorithm>

#define MIXQ_SGEMM_ROWS_BODY                                    \
  for (int64_t i = m0; i < m1; ++i) {                           \
    float* c = C + i * ldc;                                     \
    if (!accumulate) std::fill(c, c + n, 0.0f);                 \
    const float* a = A + i * lda;                               \
    for (int64_t q = 0; q < k; ++q) {                           \
      const float av = a[q];                                    \
      const float* b = B + q * ldb;                             \
      for (int64_t j = 0; j < n; ++j) c[j] += av * b[j];        \
    }                                                           \
  }
