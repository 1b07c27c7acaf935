#include "runtime/qlinear.h"

#include <algorithm>
#include <cmath>

#include "kernels/quantize.h"
#include "kernels/sgemm.h"

namespace mixq::rt {

void QLinear::quantize_act(const float* x, int64_t numel, uint8_t* a) const {
  kernels::quantize_u8(x, numel, sa, static_cast<float>(za + aqmin), static_cast<float>(aqmin),
                       static_cast<float>(aqmax), a, B.isa);
}

void QLinear::fake_quant_act(const float* x, int64_t numel, float* y) const {
  if (!act_quant) {
    std::copy(x, x + numel, y);
    return;
  }
  const float zq = static_cast<float>(za + aqmin), lo = static_cast<float>(aqmin), hi = static_cast<float>(aqmax);
  for (int64_t i = 0; i < numel; ++i) {
    const float q = std::min(std::max(kernels::round_half_even(x[i] / sa) + zq, lo), hi);
    y[i] = sa * (q - zq);
  }
}

void QLinear::run_int(const uint8_t* A, int64_t lda, const int32_t* rsum, int64_t m, float* y, int64_t ysm,
                      int64_t ysn, int threads, std::vector<int32_t>& C) const {
  C.resize(static_cast<size_t>(m * n));
  kernels::gemm_u8s8(A, lda, m, B, C.data(), n, threads);
  for (int64_t i = 0; i < m; ++i) {
    const int32_t* c = C.data() + i * n;
    float* yr = y + i * ysm;
    const int32_t rs = rsum[i];
    for (int64_t j = 0; j < n; ++j)
      yr[j * ysn] = out_scale[j] * static_cast<float>(c[j] + col_term[j] - zw[j] * rs) + bias[j];
  }
}

void QLinear::run_float(const float* X, int64_t m, float* y, int64_t ysm, int64_t ysn, int threads,
                        std::vector<float>& C) const {
  if (ysn == 1 && ysm == n) {
    kernels::sgemm(X, k, wt.data(), n, y, n, m, n, k, false, threads, isa);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) y[i * n + j] += bias[j];
    return;
  }
  C.resize(static_cast<size_t>(m * n));
  kernels::sgemm(X, k, wt.data(), n, C.data(), n, m, n, k, false, threads, isa);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) y[i * ysm + j * ysn] = C[i * n + j] + bias[j];
}

}  // namespace mixq::rt
