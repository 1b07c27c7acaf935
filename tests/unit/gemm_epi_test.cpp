// The GEMM with the fused epilogue (kernels/gemm_epi.h) against its reference (gemm_u8s8_ref, then
// epilogue_u8_ref / epilogue_f32_ref), bit for bit: odd m, n (partial panels and groups of 1-4
// panels), odd k, every epilogue term (column offsets, zw * row sums, residual sum with its clamp),
// Relu/Clip/none, codes and floats, results on and beside rounding ties, 1 and 2 threads, and the
// implicit-GEMM form against the gathered rows.
#include <cmath>
#include <random>

#include "kernels/epilogue.h"
#include "kernels/gemm_epi.h"
#include "kernels/gemm_u8s8.h"
#include "kernels/isa.h"
#include "test_util.h"

namespace mixq::test {
namespace {

struct EpiData {
  std::vector<int32_t> off, zw, rsum;
  std::vector<float> scale, bias, sum;
};

// Random epilogue terms for m x n; a quarter of the channels land on a tie of q's grid or just
// beside one (scale 0, bias = the value).
EpiData make_terms(int64_t m, int64_t n, int64_t lds, const kernels::OutQuant& q, std::mt19937& rng) {
  std::uniform_real_distribution<float> ud(-1, 1);
  EpiData d;
  d.off.resize(n);
  d.zw.resize(n);
  d.rsum.resize(m);
  d.scale.resize(n);
  d.bias.resize(n);
  d.sum.resize(static_cast<size_t>(m * lds));
  for (auto& v : d.off) v = static_cast<int32_t>(rng() % 2001) - 1000;
  for (auto& v : d.zw) v = static_cast<int32_t>(rng() % 31) - 15;
  for (auto& v : d.rsum) v = static_cast<int32_t>(rng() % 5000);
  for (auto& v : d.sum) v = 2 * ud(rng);
  for (int64_t j = 0; j < n; ++j) {
    d.scale[j] = 2e-4f * (1 + ud(rng));
    d.bias[j] = ud(rng);
    if (j % 8 == 3) {
      const float tie = (float(int(rng() % 41) - 20) + 0.5f) * q.scale;
      d.scale[j] = 0;
      d.bias[j] = j % 16 == 3 ? tie : std::nextafter(tie, 1e9f);
    }
  }
  return d;
}

kernels::EpiRows rows_of(const EpiData& d, int64_t m, int64_t n, int64_t lds, int terms, int kind) {
  kernels::EpiRows e;
  e.m = m;
  e.n = n;
  e.off = terms >= 1 ? d.off.data() : nullptr;
  e.zw = terms >= 2 ? d.zw.data() : nullptr;
  e.rsum = d.rsum.data();
  e.scale = d.scale.data();
  e.bias = d.bias.data();
  e.act = kind == 0 ? kernels::ActClamp{} : kind == 1 ? kernels::ActClamp{0.0f, INFINITY} : kernels::ActClamp{0.0f, 6.0f};
  if (terms == 3) {
    e.sum = d.sum.data();
    e.lds = lds;
    e.post = kernels::ActClamp{0.0f, INFINITY};
  }
  return e;
}

TEST(GemmEpi, FusedTilesMatchGemmThenEpilogueExactly) {
  if (!kernels::isa_supported(kernels::Isa::kAvx512)) GTEST_SKIP() << "no AVX-512 VNNI";
  std::mt19937 rng(5);
  for (int64_t m : {1, 3, 4, 9, 37})
    for (int64_t n : {5, 16, 24, 64, 70, 130})
      for (int64_t k : {3, 16, 67}) {
        const int64_t kp = kernels::gemm_kp(k), lda = kp + 5, ldy = n + 3, lds = n + 2;
        std::vector<uint8_t> A(static_cast<size_t>(m * lda), 0);
        std::vector<int8_t> B(static_cast<size_t>(n * k));
        for (int64_t i = 0; i < m; ++i)
          for (int64_t q = 0; q < k; ++q) A[i * lda + q] = static_cast<uint8_t>(rng());
        for (auto& b : B) b = static_cast<int8_t>(rng());
        const kernels::PackedB P = kernels::pack_b(B.data(), n, k, kernels::Isa::kAvx512);
        ASSERT_TRUE(kernels::gemm_epi_supported(P));
        for (int kind = 0; kind < 3; ++kind) {
          const kernels::OutQuant q{kind == 2 ? 6.0f / 255 : 0.0371f, kind == 0 ? 128.0f : 0.0f, 0.0f, 255.0f};
          const EpiData d = make_terms(m, n, lds, q, rng);
          for (int terms = 0; terms < 4; ++terms) {
            const kernels::EpiRows e = rows_of(d, m, n, lds, terms, kind);
            std::vector<uint8_t> want(static_cast<size_t>(m * ldy), 1), got(want.size(), 1);
            std::vector<float> fwant(want.size(), 1.0f), fgot(want.size(), 1.0f);
            kernels::EpiOut ow{&q, want.data(), nullptr, ldy}, fw{nullptr, nullptr, fwant.data(), ldy};
            kernels::gemm_u8s8_epi_ref(A.data(), lda, m, B.data(), n, k, e, ow);
            kernels::gemm_u8s8_epi_ref(A.data(), lda, m, B.data(), n, k, e, fw);
            for (int threads : {1, 2}) {
              kernels::EpiOut og{&q, got.data(), nullptr, ldy}, fg{nullptr, nullptr, fgot.data(), ldy};
              kernels::gemm_u8s8_epi(A.data(), lda, m, P, e, og, threads);
              kernels::gemm_u8s8_epi(A.data(), lda, m, P, e, fg, threads);
              ASSERT_EQ(got, want) << "m=" << m << " n=" << n << " k=" << k << " kind=" << kind << " terms=" << terms;
              ASSERT_EQ(fgot, fwant) << "m=" << m << " n=" << n << " k=" << k << " kind=" << kind << " terms=" << terms;
            }
          }
        }
      }
}

TEST(GemmEpi, IndirectFusedMatchesGatheredReference) {
  if (!kernels::isa_supported(kernels::Isa::kAvx512)) GTEST_SKIP() << "no AVX-512 VNNI";
  std::mt19937 rng(17);
  for (int64_t seg : {4, 36})
    for (int64_t n : {5, 40, 70}) {
      const int64_t taps = 9, pixels = 50, stride = seg + 8, m = 23, k = taps * seg, ldy = n + 1, lds = n;
      std::vector<uint8_t> img(static_cast<size_t>(pixels * stride)), pad(static_cast<size_t>(seg), 131);
      for (auto& v : img) v = static_cast<uint8_t>(rng());
      std::vector<int32_t> pix(static_cast<size_t>(m * taps));
      for (auto& v : pix) v = rng() % 5 == 0 ? -1 : static_cast<int32_t>(rng() % pixels);
      std::vector<int8_t> B(static_cast<size_t>(n * k));
      for (auto& v : B) v = static_cast<int8_t>(rng());
      kernels::IndirectA a;
      a.base = img.data();
      a.pix = pix.data();
      a.taps = taps;
      a.seg = seg;
      a.stride = stride;
      a.pad = pad.data();
      std::vector<uint8_t> rows(static_cast<size_t>(m * k));  // the gathered rows
      for (int64_t i = 0; i < m; ++i)
        for (int64_t t = 0; t < taps; ++t) {
          const uint8_t* src = pix[i * taps + t] < 0 ? pad.data() : img.data() + pix[i * taps + t] * stride;
          std::copy(src, src + seg, rows.begin() + i * k + t * seg);
        }
      const kernels::PackedB P = kernels::pack_b(B.data(), n, k, kernels::Isa::kAvx512);
      const kernels::OutQuant q{0.05f, 3.0f, 0.0f, 255.0f};
      const EpiData d = make_terms(m, n, lds, q, rng);
      for (int terms = 0; terms < 4; ++terms) {
        const kernels::EpiRows e = rows_of(d, m, n, lds, terms, 1);
        std::vector<uint8_t> want(static_cast<size_t>(m * ldy)), got(want.size());
        kernels::gemm_u8s8_epi_ref(rows.data(), k, m, B.data(), n, k, e, {&q, want.data(), nullptr, ldy});
        kernels::gemm_u8s8_indirect_epi(a, m, P, e, {&q, got.data(), nullptr, ldy});
        ASSERT_EQ(got, want) << "seg=" << seg << " n=" << n << " terms=" << terms;
      }
    }
}

}  // namespace
}  // namespace mixq::test
