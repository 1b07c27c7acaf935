#include "kernels/gemm_u8s8.h"

#include <algorithm>
#include <vector>

#include "mixq/error.h"

namespace mixq::kernels {

PackedB pack_b(const int8_t* B, int64_t n, int64_t k, Isa isa) {
  PackedB p;
  p.isa = isa;
  p.n = n;
  p.k = k;
  p.kp = gemm_kp(k);
  p.row_sums.assign(static_cast<size_t>(n), 0);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < k; ++i) p.row_sums[j] += B[j * k + i];
  auto at = [&](int64_t j, int64_t i) -> int8_t { return j < n && i < k ? B[j * k + i] : int8_t(0); };
  // Panels of `cols` columns, each [kp / group][cols][group] (0 past n or k): what a path's tile
  // loads as one vector per step of `group` reduction elements.
  auto panels_of = [&](auto& out, int64_t cols, int64_t group) {
    const int64_t panels = (n + cols - 1) / cols, kg = p.kp / group;
    out.assign(static_cast<size_t>(panels * kg * cols * group), 0);
    for (int64_t pn = 0; pn < panels; ++pn)
      for (int64_t q = 0; q < kg; ++q)
        for (int64_t j = 0; j < cols; ++j)
          for (int64_t t = 0; t < group; ++t)
            out[((pn * kg + q) * cols + j) * group + t] = at(pn * cols + j, q * group + t);
  };
  switch (isa) {
    case Isa::kRef:
      p.b8.assign(static_cast<size_t>(n * p.kp), 0);
      for (int64_t j = 0; j < n; ++j) std::copy(B + j * k, B + j * k + k, p.b8.begin() + j * p.kp);
      break;
    case Isa::kAvx512: panels_of(p.b8, 16, 4); break;
    case Isa::kAvx2:
      p.narrow = std::all_of(B, B + n * k, [](int8_t v) { return v >= -64 && v <= 63; });
      if (p.narrow) panels_of(p.b8, 8, 4);
      else panels_of(p.b16, 8, 2);
      break;
  }
  return p;
}

void gemm_u8s8_ref(const uint8_t* A, int64_t lda, int64_t m, const int8_t* B, int64_t n, int64_t k, int32_t* C,
                   int64_t ldc) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      int32_t acc = 0;
      for (int64_t q = 0; q < k; ++q) acc += int32_t(A[i * lda + q]) * int32_t(B[j * k + q]);
      C[i * ldc + j] = acc;
    }
}

// At least 16 rows and ~1M multiply-adds per thread, else one (waking a sleeping thread costs tens
// of microseconds; a small GEMM is done by then).
int gemm_split_threads(int threads, int64_t m, int64_t row_macs) {
  const int64_t by_rows = m / 16, by_work = m * row_macs / (int64_t(1) << 20);
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, std::min(by_rows, by_work))));
}

bool indirect_supported(const PackedB& B, int64_t seg) {
  return B.isa == Isa::kAvx512 && seg > 0 && seg % 4 == 0 && B.kp == B.k && B.k % seg == 0;
}

void gemm_u8s8_indirect_ref(const IndirectA& a, int64_t m, const int8_t* B, int64_t n, int32_t* C, int64_t ldc) {
  const int64_t k = a.taps * a.seg;
  std::vector<uint8_t> row(static_cast<size_t>(k));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t t = 0; t < a.taps; ++t) {
      const int32_t px = a.pix[i * a.taps + t];
      const uint8_t* src = px < 0 ? a.pad : a.base + px * a.stride;
      std::copy(src, src + a.seg, row.begin() + t * a.seg);
    }
    gemm_u8s8_ref(row.data(), k, 1, B, n, k, C + i * ldc, ldc);
  }
}

void gemm_u8s8_indirect(const IndirectA& a, int64_t m, const PackedB& B, int32_t* C, int64_t ldc, int threads) {
  MIXQ_ASSERT(indirect_supported(B, a.seg) && a.taps * a.seg == B.k && ldc >= B.n);
  const int nt = gemm_split_threads(threads, m, B.n * B.kp);
  if (nt <= 1) {
    gemm_u8s8_indirect_avx512(a, 0, m, B, C, ldc);
    return;
  }
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int t = 0; t < nt; ++t) {
    const int64_t m0 = m * t / nt, m1 = m * (t + 1) / nt;
    gemm_u8s8_indirect_avx512(a, m0, m1, B, C, ldc);
  }
}

namespace {

void gemm_rows(const uint8_t* A, int64_t lda, int64_t m0, int64_t m1, const PackedB& B, int32_t* C, int64_t ldc) {
  switch (B.isa) {
    case Isa::kRef:
      gemm_u8s8_ref(A + m0 * lda, lda, m1 - m0, B.b8.data(), B.n, B.kp, C + m0 * ldc, ldc);
      break;
    case Isa::kAvx2: gemm_u8s8_avx2(A, lda, m0, m1, B, C, ldc); break;
    case Isa::kAvx512: gemm_u8s8_avx512(A, lda, m0, m1, B, C, ldc); break;
  }
}

}  // namespace

void gemm_u8s8(const uint8_t* A, int64_t lda, int64_t m, const PackedB& B, int32_t* C, int64_t ldc, int threads) {
  MIXQ_ASSERT(lda >= B.kp && ldc >= B.n);
  // Threads split rows when there are enough of them, else the kernels run on one thread (a
  // batch-1 GEMV is memory-bound and small here; fork/join would cost more than it saves).
  const int nt = gemm_split_threads(threads, m, B.n * B.kp);
  if (nt <= 1) {
    gemm_rows(A, lda, 0, m, B, C, ldc);
    return;
  }
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int t = 0; t < nt; ++t) {
    const int64_t b = m * t / nt / 4 * 4, e = t + 1 == nt ? m : m * (t + 1) / nt / 4 * 4;
    if (e > b) gemm_rows(A, lda, b, e, B, C, ldc);
  }
}

}  // namespace mixq::kernels
