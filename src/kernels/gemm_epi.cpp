#include "kernels/gemm_epi.h"

#include <vector>

#include "mixq/error.h"

namespace mixq::kernels {

bool gemm_epi_supported(const PackedB& B) { return B.isa == Isa::kAvx512; }

void gemm_u8s8_epi_ref(const uint8_t* A, int64_t lda, int64_t m, const int8_t* B, int64_t n, int64_t k,
                       const EpiRows& e, const EpiOut& out) {
  std::vector<int32_t> acc(static_cast<size_t>(m * n));
  gemm_u8s8_ref(A, lda, m, B, n, k, acc.data(), n);
  EpiRows r = e;
  r.acc = acc.data();
  r.lda = n;
  r.m = m;
  r.n = n;
  if (out.q) epilogue_u8_ref(r, *out.q, out.u8, out.ldy);
  else epilogue_f32_ref(r, out.f32, out.ldy);
}

void gemm_u8s8_epi(const uint8_t* A, int64_t lda, int64_t m, const PackedB& B, const EpiRows& e, const EpiOut& out,
                   int threads) {
  MIXQ_ASSERT(gemm_epi_supported(B) && lda >= B.kp && e.n == B.n && out.ldy >= B.n);
  const int nt = gemm_split_threads(threads, m, B.n * B.kp);
  if (nt <= 1) {
    gemm_u8s8_epi_avx512(A, lda, nullptr, 0, m, B, e, out);
    return;
  }
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int t = 0; t < nt; ++t) {
    const int64_t b = m * t / nt / 4 * 4, end = t + 1 == nt ? m : m * (t + 1) / nt / 4 * 4;
    if (end > b) gemm_u8s8_epi_avx512(A, lda, nullptr, b, end, B, e, out);
  }
}

void gemm_u8s8_indirect_epi(const IndirectA& a, int64_t m, const PackedB& B, const EpiRows& e, const EpiOut& out) {
  MIXQ_ASSERT(gemm_epi_supported(B) && indirect_supported(B, a.seg) && a.taps * a.seg == B.k && e.n == B.n &&
              out.ldy >= B.n);
  gemm_u8s8_epi_avx512(nullptr, 0, &a, 0, m, B, e, out);
}

}  // namespace mixq::kernels
