// sgemm rows compiled for avx512 (FMA contraction off: bit-identical to the reference loop).
#include "kernels/sgemm.h"
#include "kernels/sgemm_impl.h"

namespace mixq::kernels {

void sgemm_rows_avx512(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, int64_t m0,
                     int64_t m1, int64_t n, int64_t k, bool accumulate) {
  MIXQ_SGEMM_ROWS_BODY
}

}  // namespace mixq::kernels
