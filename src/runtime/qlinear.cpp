#include "runtime/qlinear.h"

#include "runtime/onednn.h"

#include <algorithm>
#include <cmath>

#include "kernels/quantize.h"
#include "kernels/sgemm.h"

namespace mixq::rt {

int64_t param_index(const pack::QWeight& q, int64_t i) {
  if (q.granularity == pack::Gran::kPerTensor) return 0;
  const int64_t C = q.channels(), G = q.groups();
  int64_t inner = 1;
  for (size_t d = static_cast<size_t>(q.axis) + 1; d < q.dims.size(); ++d) inner *= q.dims[d];
  const int64_t gs = q.granularity == pack::Gran::kPerGroup ? q.group_size : std::max<int64_t>(q.k(), 1);
  const int64_t nn = i % inner, rest = i / inner, c = rest % C, o = rest / C;
  return c * G + (o * inner + nn) / gs;
}

int64_t QLinear::weight_bytes() const {
  return static_cast<int64_t>(B.b8.size() + B.b16.size() * 2 + B.row_sums.size() * 4 + w8.size() + wt.size() * 4 +
                              (out_scale.size() + zw.size() + col_term.size()) * 4) +
         L.bytes() + (onednn ? n * k * 4 : 0);
}

std::string QLinear::kernel_name() const {
  if (int_path) return lowbit ? "lowbit" + std::to_string(L.bits) : "int8";
  return float_lowbit ? "f32-lowbit" + std::to_string(L.bits) : (onednn ? "f32-onednn" : "f32");
}

void QLinear::quantize_act(const float* x, int64_t numel, uint8_t* a) const {
  kernels::quantize_u8(x, numel, sa, static_cast<float>(za + aqmin), static_cast<float>(aqmin),
                       static_cast<float>(aqmax), a, isa);
}

void QLinear::fake_quant_act(const float* x, int64_t numel, float* y) const {
  if (!act_quant) {
    std::copy(x, x + numel, y);
    return;
  }
  kernels::fake_quantize_f32(x, numel, sa, static_cast<float>(za + aqmin), static_cast<float>(aqmin),
                             static_cast<float>(aqmax), y);  // the runtime's quantizer (kernels/quantize.h)
}

void QLinear::gemm(const uint8_t* A, int64_t lda, int64_t m, int32_t* C, int threads) const {
  if (lowbit) kernels::gemm_lowbit_u8(A, lda, m, L, C, n, isa, threads);
  else kernels::gemm_u8s8(A, lda, m, B, C, n, threads);
}

kernels::EpiRows QLinear::epilogue_rows(const int32_t* acc, int64_t m, int64_t lda, const int32_t* rsum) const {
  kernels::EpiRows e;
  e.acc = acc;
  e.m = m;
  e.n = n;
  e.lda = lda;
  e.off = col_term_nonzero ? col_term.data() : nullptr;  // (zero when the input's zero point is)
  if (zw_nonzero) {
    e.zw = zw.data();
    e.rsum = rsum;
  }
  e.scale = out_scale.data();
  e.bias = bias.data();
  return e;
}

void QLinear::use_onednn() {
  if (int_path || float_lowbit || wt.empty()) return;
  onednn = std::make_shared<DnnlLinear>(wt.data(), n, k, /*k_major=*/true, bias.data());
  std::vector<float>().swap(wt);
}

void QLinear::run_float(const float* X, int64_t m, float* y, int64_t ysm, int64_t ysn, int threads,
                        std::vector<float>& C) const {
  if (float_lowbit) {
    if (ysn == 1 && ysm == n) {
      kernels::gemm_lowbit_f32(X, k, m, L, bias.data(), y, n, isa, threads);
      return;
    }
    C.resize(static_cast<size_t>(m * n));
    kernels::gemm_lowbit_f32(X, k, m, L, bias.data(), C.data(), n, isa, threads);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) y[i * ysm + j * ysn] = C[i * n + j];
    return;
  }
  if (onednn) {  // bias included
    if (ysn == 1 && ysm == n) {
      onednn->run(X, m, y, threads);
      return;
    }
    C.resize(static_cast<size_t>(m * n));
    onednn->run(X, m, C.data(), threads);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) y[i * ysm + j * ysn] = C[i * n + j];
    return;
  }
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
