// Kernels against their scalar reference: the integer GEMM on every ISA path this CPU has must be
// bit-exact (odd sizes, prime strides, full code ranges); the float GEMM against a double-precision
// loop; the low-bit GEMV/GEMM (every width x path, exact against its reference, integer and float);
// the ISA override.
#include <array>
#include <cmath>
#include <cstdlib>
#include <random>

#include "kernels/depthwise_u8.h"
#include "kernels/embed_bag.h"
#include "kernels/epilogue.h"
#include "kernels/gelu.h"
#include "kernels/gemm_u8s8.h"
#include "kernels/gemv_lowbit.h"
#include "kernels/isa.h"
#include "kernels/maxpool.h"
#include "kernels/quantize.h"
#include "kernels/sgemm.h"
#include "kernels/vmath.h"
#include "quant/reference.h"
#include "test_util.h"

namespace mixq::test {
namespace {

TEST(GemmU8S8, EveryPathMatchesReferenceExactly) {
  std::mt19937 rng(3);
  EXPECT_GE(isas().size(), 1u);
  for (int64_t m : {1, 2, 3, 4, 5, 17, 64})
    for (int64_t n : {1, 7, 8, 15, 16, 17, 33, 64, 70, 100})
      for (int64_t k : {1, 3, 4, 13, 64, 257}) {
        const int64_t kp = kernels::gemm_kp(k), lda = kp + 7;  // a prime-ish stride beyond kp
        std::vector<uint8_t> A(static_cast<size_t>(m * lda), 0);
        std::vector<int8_t> B(static_cast<size_t>(n * k));
        for (int64_t i = 0; i < m; ++i)
          for (int64_t q = 0; q < k; ++q) A[i * lda + q] = static_cast<uint8_t>(rng());
        for (auto& b : B) b = static_cast<int8_t>(rng());
        A[0] = 255;
        B[0] = -128;  // extremes: the AVX2 path must not saturate
        const int64_t ldc = n + 3;
        std::vector<int32_t> ref(static_cast<size_t>(m * ldc), 0);
        kernels::gemm_u8s8_ref(A.data(), lda, m, B.data(), n, k, ref.data(), ldc);
        for (auto isa : isas()) {
          const kernels::PackedB P = kernels::pack_b(B.data(), n, k, isa);
          for (int threads : {1, 2}) {
            std::vector<int32_t> C(static_cast<size_t>(m * ldc), 0);
            kernels::gemm_u8s8(A.data(), lda, m, P, C.data(), ldc, threads);
            for (int64_t i = 0; i < m; ++i)
              for (int64_t j = 0; j < n; ++j)
                ASSERT_EQ(C[i * ldc + j], ref[i * ldc + j])
                    << kernels::isa_name(isa) << " m=" << m << " n=" << n << " k=" << k << " at " << i << "," << j;
          }
          for (int64_t j = 0; j < n; ++j) {
            int32_t s = 0;
            for (int64_t q = 0; q < k; ++q) s += B[j * k + q];
            ASSERT_EQ(P.row_sums[j], s);
          }
        }
      }
}

TEST(DepthwiseU8, EveryPathMatchesReferenceExactly) {
  std::mt19937 rng(29);
  struct Case { int64_t C, H, W, KH, KW, SH, SW, PT, PL, PB, PR, DH, DW; };
  const Case cases[] = {
      {1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1},      // one pixel, one channel
      {3, 7, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},      // odd sizes, same padding
      {17, 11, 13, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},   // stride 2, channels not a vector multiple
      {33, 8, 7, 5, 3, 3, 2, 2, 0, 1, 2, 2, 1},     // prime strides, uneven pads, dilation
      {96, 14, 14, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},   // MobileNetV2-like
      {5, 4, 4, 3, 3, 1, 1, 3, 3, 3, 3, 1, 1},      // padding larger than the kernel reach
      {2, 6, 5, 8, 8, 1, 1, 4, 4, 3, 3, 1, 1},      // 64 taps (the runtime's limit), extremes below
  };
  for (const Case& c : cases) {
    kernels::DepthwiseShape s;
    s.C = c.C; s.H = c.H; s.W = c.W; s.KH = c.KH; s.KW = c.KW; s.SH = c.SH; s.SW = c.SW;
    s.PT = c.PT; s.PL = c.PL; s.DH = c.DH; s.DW = c.DW;
    s.OH = (c.H + c.PT + c.PB - c.DH * (c.KH - 1) - 1) / c.SH + 1;
    s.OW = (c.W + c.PL + c.PR - c.DW * (c.KW - 1) - 1) / c.SW + 1;
    ASSERT_GT(s.OH, 0);
    ASSERT_GT(s.OW, 0);
    const int64_t T = c.KH * c.KW;
    for (int extreme : {0, 1, 2, 3}) {  // 2, 3: weights that fit int8 (one vpdpbusd per tap quad), 3 at its extremes
      SCOPED_TRACE(testing::Message() << "C=" << c.C << " H=" << c.H << " W=" << c.W << " k=" << c.KH << "x" << c.KW
                                      << " extreme=" << extreme);
      std::vector<uint8_t> a(static_cast<size_t>(c.H * c.W * c.C));
      std::vector<int16_t> w(static_cast<size_t>(T * c.C));
      for (auto& v : a) v = extreme == 1 || extreme == 3 ? 255 : static_cast<uint8_t>(rng());
      for (auto& v : w) {
        if (extreme == 1) v = -255;
        else if (extreme == 2) v = static_cast<int16_t>(static_cast<int>(rng() % 256) - 128);
        else if (extreme == 3) v = rng() % 2 ? -128 : 127;
        else v = static_cast<int16_t>(static_cast<int>(rng() % 511) - 255);
      }
      const int32_t za = extreme == 1 ? 0 : extreme == 3 ? 255 : 117;
      const bool fits = extreme >= 2;
      if (fits || c.C * T > 1) {
        ASSERT_EQ(kernels::dw_quads_fit(w.data(), T, c.C), fits);
      }
      const kernels::DwQuads quads = kernels::pack_dw_quads(w.data(), s, za);  // (split when not fits)
      EXPECT_EQ(quads.split, !kernels::dw_quads_fit(w.data(), T, c.C));
      kernels::DwQuadRows qrows;
      std::vector<float> dw_scale(static_cast<size_t>(c.C)), dw_bias(dw_scale.size()),
          dw_sum(static_cast<size_t>(s.OW * c.C));
      for (auto& v : dw_scale) v = 1e-5f * float(1 + rng() % 100);
      for (auto& v : dw_bias) v = 0.01f * float(int(rng() % 200) - 100);
      for (auto& v : dw_sum) v = 0.01f * float(int(rng() % 200) - 100);
      std::vector<int32_t> acc(static_cast<size_t>(s.OW * c.C));
      // Every path, every row: the reference's exact sums.
      std::vector<int32_t> want(acc.size()), got(acc.size());
      for (int64_t oy = 0; oy < s.OH; ++oy) {
        kernels::depthwise_u8_acc_row_ref(a.data(), za, w.data(), s, oy, want.data());
        kernels::depthwise_u8_acc_row_base(a.data(), za, w.data(), s, oy, got.data());
        ASSERT_EQ(got, want) << "baseline acc row " << oy;
        for (auto isa : isas()) {
          kernels::depthwise_u8_acc_row(a.data(), za, w.data(), s, oy, got.data(), isa);
          ASSERT_EQ(got, want) << kernels::isa_name(isa) << " acc row " << oy;
        }
        if (kernels::isa_supported(kernels::Isa::kAvx2)) {
          const auto w2 = kernels::interleave_tap_pairs(w.data(), T, c.C);
          const std::vector<uint8_t> zrow(static_cast<size_t>(c.C), static_cast<uint8_t>(za));
          const auto nz = kernels::tap_pair_zero_terms(w2.data(), T, c.C, za);
          std::fill(got.begin(), got.end(), -1);
          kernels::depthwise_u8_acc_row_pairs_avx2(a.data(), nz.data(), w2.data(), zrow.data(), s, oy, got.data());
          ASSERT_EQ(got, want) << "tap pairs avx2, acc row " << oy;
        }
        if (kernels::isa_supported(kernels::Isa::kAvx512)) {
          const auto w2 = kernels::interleave_tap_pairs(w.data(), T, c.C);
          const std::vector<uint8_t> zrow(static_cast<size_t>(c.C), static_cast<uint8_t>(za));
          std::fill(got.begin(), got.end(), -1);
          const auto nz = kernels::tap_pair_zero_terms(w2.data(), T, c.C, za);
          kernels::depthwise_u8_acc_row_pairs_avx512(a.data(), nz.data(), w2.data(), zrow.data(), s, oy, got.data());
          ASSERT_EQ(got, want) << "tap pairs, acc row " << oy;
          std::fill(got.begin(), got.end(), -1);  // (interleaved rows cached across this image's rows)
          kernels::depthwise_u8_acc_row_quads_avx512(a.data(), quads, zrow.data(), s, oy, qrows, got.data());
          ASSERT_EQ(got, want) << "tap quads" << (quads.split ? " (split)" : "") << ", acc row " << oy;
          // The same sums through an epilogue in registers (Relu, or a residual sum then Relu) =
          // epilogue_u8_ref on the reference sums.
          for (int with_sum : {0, 1}) {
            kernels::EpiRows e;
            e.acc = want.data();
            e.m = s.OW;
            e.n = e.lda = c.C;
            e.scale = dw_scale.data();
            e.bias = dw_bias.data();
            e.act = kernels::ActClamp{0.0f, INFINITY};
            if (with_sum) {
              e.sum = dw_sum.data();
              e.lds = c.C;
              e.post = kernels::ActClamp{0.0f, 6.0f};
            }
            const kernels::OutQuant oq{0.02f, 3.0f, 0.0f, 255.0f};
            const int64_t ldy = c.C + 3;
            std::vector<uint8_t> cw(static_cast<size_t>(s.OW * ldy), 7), cg(cw.size(), 7);
            kernels::epilogue_u8_ref(e, oq, cw.data(), ldy);
            kernels::depthwise_u8_row_quads_epi_avx512(a.data(), quads, zrow.data(), s, oy, qrows, e, oq, cg.data(),
                                                       ldy);
            ASSERT_EQ(cg, cw) << "tap quads + epilogue, sum " << with_sum << ", row " << oy;
          }
        }
      }
    }
  }
}

// The fused epilogue (zero-point terms, rescale, Relu/Clip, requantize) on every path equals the
// reference, with results landing on and just beside rounding ties of the output quantizer; and the
// row sums it reads.
TEST(Epilogue, EveryPathMatchesReferenceExactly) {
  std::mt19937 rng(41);
  std::uniform_real_distribution<float> ud(-1, 1);
  for (int64_t n : {1, 7, 16, 33, 96}) {
    for (int kind = 0; kind < 3; ++kind) {
      const kernels::ActClamp act = kind == 0 ? kernels::ActClamp{} : kind == 1 ? kernels::ActClamp{0.0f, INFINITY}
                                                                               : kernels::ActClamp{0.0f, 6.0f};
      const kernels::OutQuant q{kind == 2 ? 6.0f / 255 : 0.0371f, kind == 0 ? 128.0f : 0.0f, 0.0f, 255.0f};
      const int64_t m = 3, lda = n + 5;
      std::vector<int32_t> acc(static_cast<size_t>(m * lda)), off(n), zw(n), rsum(m);
      std::vector<float> scale(static_cast<size_t>(n)), bias(static_cast<size_t>(n));
      for (auto& v : acc) v = static_cast<int32_t>(rng() % 20001) - 10000;
      for (auto& v : off) v = static_cast<int32_t>(rng() % 201) - 100;
      for (auto& v : zw) v = static_cast<int32_t>(rng() % 31) - 15;
      for (auto& v : rsum) v = static_cast<int32_t>(rng() % 5000);
      for (int64_t j = 0; j < n; ++j) {
        scale[j] = 1e-3f * (1 + ud(rng));
        bias[j] = ud(rng);
        if (j % 4 != 0) {  // v = bias: a tie k + 0.5 of the output grid, or a float just beside one
          const float tie = (float(int(rng() % 41) - 20) + 0.5f) * q.scale;
          scale[j] = 0;
          bias[j] = j % 4 == 1 ? tie : std::nextafter(tie, j % 4 == 2 ? 1e9f : -1e9f);
        }
      }
      std::vector<float> sum(static_cast<size_t>(m * (n + 2)));
      for (auto& v : sum) v = 3 * ud(rng);
      for (int terms = 0; terms < 4; ++terms) {  // none; the offset; offset and zw * rsum; + a residual
        kernels::EpiRows e;
        e.acc = acc.data();
        e.m = m;
        e.n = n;
        e.lda = lda;
        e.off = terms >= 1 ? off.data() : nullptr;
        e.zw = terms == 2 ? zw.data() : nullptr;
        e.rsum = rsum.data();
        e.scale = scale.data();
        e.bias = bias.data();
        e.act = act;
        if (terms == 3) {
          e.sum = sum.data();
          e.lds = n + 2;
          e.post = kernels::ActClamp{0.0f, INFINITY};
        }
        const int64_t ldy = n + 3;
        std::vector<uint8_t> want(static_cast<size_t>(m * ldy)), got(want.size());
        std::vector<float> fwant(want.size()), fgot(want.size());
        kernels::epilogue_u8_ref(e, q, want.data(), ldy);
        kernels::epilogue_f32_ref(e, fwant.data(), ldy);
        for (auto isa : isas()) {
          std::fill(got.begin(), got.end(), 0);
          std::fill(fgot.begin(), fgot.end(), 0.0f);
          kernels::epilogue_u8(e, q, got.data(), ldy, isa);
          kernels::epilogue_f32(e, fgot.data(), ldy, isa);
          for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) {
              ASSERT_EQ(got[i * ldy + j], want[i * ldy + j]) << kernels::isa_name(isa) << " n=" << n << " kind=" << kind
                                                             << " terms=" << terms << " at " << i << "," << j;
              ASSERT_EQ(fgot[i * ldy + j], fwant[i * ldy + j]) << kernels::isa_name(isa) << " n=" << n;
            }
        }
      }
    }
  }
  for (int64_t k : {1, 63, 64, 65, 200}) {
    std::vector<uint8_t> a(static_cast<size_t>(5 * (k + 7)));
    for (auto& v : a) v = static_cast<uint8_t>(rng());
    std::vector<int32_t> want(5), got(5);
    kernels::row_sums_u8_ref(a.data(), 5, k, k + 7, want.data());
    for (auto isa : isas()) {
      kernels::row_sums_u8(a.data(), 5, k, k + 7, got.data(), isa);
      ASSERT_EQ(got, want) << kernels::isa_name(isa) << " k=" << k;
    }
  }
}

// The implicit-GEMM convolution kernel (taps read in place, padding from a pad segment) equals
// gathering the rows and running the reference.
TEST(GemmU8S8, IndirectMatchesGatheredReference) {
  if (!kernels::isa_supported(kernels::Isa::kAvx512)) GTEST_SKIP() << "no AVX-512 VNNI";
  std::mt19937 rng(77);
  for (int64_t seg : {4, 16, 36}) {
    for (int64_t taps : {1, 9}) {
      for (int64_t n : {5, 16, 40, 70}) {
        const int64_t pixels = 50, stride = seg + 8, m = 23, k = taps * seg;
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
        std::vector<int32_t> want(static_cast<size_t>(m * n)), got(want.size(), -7);
        kernels::gemm_u8s8_indirect_ref(a, m, B.data(), n, want.data(), n);
        const kernels::PackedB pb = kernels::pack_b(B.data(), n, k, kernels::Isa::kAvx512);
        ASSERT_TRUE(kernels::indirect_supported(pb, seg));
        for (int threads : {1, 2}) {
          kernels::gemm_u8s8_indirect(a, m, pb, got.data(), n, threads);
          ASSERT_EQ(got, want) << "seg=" << seg << " taps=" << taps << " n=" << n << " threads=" << threads;
        }
      }
    }
  }
}

// A layer-sized GEMM (ResNet's 3x3x128 -> 264 columns): the AVX2 path takes its columns in chunks
// of L2-sized panels and its rows in blocks of six; every chunk, block and edge column must be exact.
TEST(GemmU8S8, LayerSizedAcrossColumnChunksAndRowBlocks) {
  std::mt19937 rng(5);
  const int64_t m = 13, n = 264, k = 1152, kp = kernels::gemm_kp(k);
  std::vector<uint8_t> A(static_cast<size_t>(m * kp));
  std::vector<int8_t> B(static_cast<size_t>(n * k));
  for (auto& a : A) a = static_cast<uint8_t>(rng());
  for (auto& b : B) b = static_cast<int8_t>(rng());
  std::vector<int32_t> ref(static_cast<size_t>(m * n));
  kernels::gemm_u8s8_ref(A.data(), kp, m, B.data(), n, k, ref.data(), n);
  for (auto isa : isas())
    for (int threads : {1, 2}) {
      std::vector<int32_t> C(static_cast<size_t>(m * n), 0);
      kernels::gemm_u8s8(A.data(), kp, m, kernels::pack_b(B.data(), n, k, isa), C.data(), n, threads);
      EXPECT_EQ(C, ref) << kernels::isa_name(isa) << " threads=" << threads;
    }
}

// Weights of 7 bits or fewer ([-64, 63]) take the AVX2 path's vpmaddubsw form (PackedB::narrow):
// exact at the extremes (255 x -64 in both codes of a pair: -32640, one step from saturation).
TEST(GemmU8S8, NarrowWeightsAreExactAtTheExtremes) {
  std::mt19937 rng(8);
  for (int64_t m : {1, 5, 13})
    for (int64_t n : {7, 8, 16, 33, 264})
      for (int64_t k : {4, 13, 1152}) {
        const int64_t kp = kernels::gemm_kp(k);
        std::vector<uint8_t> A(static_cast<size_t>(m * kp), 0);
        std::vector<int8_t> B(static_cast<size_t>(n * k));
        for (int64_t i = 0; i < m; ++i)
          for (int64_t q = 0; q < k; ++q) A[i * kp + q] = q % 3 == 0 ? 255 : static_cast<uint8_t>(rng());
        for (size_t j = 0; j < B.size(); ++j) B[j] = j % 5 == 0 ? -64 : j % 7 == 0 ? 63 : static_cast<int8_t>(rng() % 128) - 64;
        std::vector<int32_t> ref(static_cast<size_t>(m * n));
        kernels::gemm_u8s8_ref(A.data(), kp, m, B.data(), n, k, ref.data(), n);
        for (auto isa : isas()) {
          const kernels::PackedB P = kernels::pack_b(B.data(), n, k, isa);
          EXPECT_EQ(P.narrow, isa == kernels::Isa::kAvx2);
          for (int threads : {1, 2}) {
            std::vector<int32_t> C(static_cast<size_t>(m * n), 0);
            kernels::gemm_u8s8(A.data(), kp, m, P, C.data(), n, threads);
            ASSERT_EQ(C, ref) << kernels::isa_name(isa) << " m=" << m << " n=" << n << " k=" << k;
          }
        }
        B[0] = -65;  // one weight beyond: the int16 form
        EXPECT_FALSE(kernels::pack_b(B.data(), n, k, kernels::Isa::kAvx2).narrow);
      }
}

TEST(GemmU8S8, LargeKDoesNotOverflow) {
  const int64_t m = 5, n = 17, k = 4608;  // 3x3x512: the largest reduction of a common conv
  std::vector<uint8_t> A(m * k, 255);
  std::vector<int8_t> B(n * k, -128);
  std::vector<int32_t> ref(m * n);
  kernels::gemm_u8s8_ref(A.data(), k, m, B.data(), n, k, ref.data(), n);
  EXPECT_EQ(ref[0], int32_t(-255 * 128 * k));
  for (auto isa : isas()) {
    std::vector<int32_t> C(m * n);
    kernels::gemm_u8s8(A.data(), k, m, kernels::pack_b(B.data(), n, k, isa), C.data(), n, 2);
    EXPECT_EQ(C, ref) << kernels::isa_name(isa);
  }
}

constexpr int kLowbitWidths[] = {2, 3, 4, 5, 6, 8};

std::vector<uint8_t> random_codes(std::mt19937& rng, int64_t n, int64_t k, int bits) {
  std::vector<uint8_t> u(static_cast<size_t>(n * k));
  for (auto& v : u) v = static_cast<uint8_t>(rng() & ((1u << bits) - 1));
  if (!u.empty()) u[0] = static_cast<uint8_t>((1u << bits) - 1);  // the extreme code
  return u;
}

TEST(Lowbit, PackUnpackRoundTripIsExactAndStaysAtItsBits) {
  std::mt19937 rng(11);
  for (int bits : kLowbitWidths)
    for (int64_t n : {1, 7, 16, 17, 33})
      for (int64_t k : {1, 3, 31, 32, 33, 97, 131}) {
        const auto u = random_codes(rng, n, k, bits);
        const kernels::LowbitWeights W = kernels::pack_lowbit(u.data(), n, k, bits);
        // b bits per weight of the padded panel grid, nothing more
        EXPECT_EQ(int64_t(W.data.size()), (n + 15) / 16 * 16 * kernels::lowbit_kp(k) * bits / 8);
        std::vector<uint8_t> back(u.size(), 0xEE);
        kernels::unpack_lowbit(W, back.data());
        ASSERT_EQ(back, u) << bits << " bits, n=" << n << " k=" << k;
        for (int64_t j = 0; j < n; ++j) {
          int32_t s = 0;
          for (int64_t q = 0; q < k; ++q) s += int32_t(u[j * k + q]) - W.code_offset;
          ASSERT_EQ(W.row_sums[j], s);
        }
      }
}

TEST(Lowbit, IntegerEveryWidthAndPathMatchesReferenceExactly) {
  std::mt19937 rng(13);
  for (int bits : kLowbitWidths)
    for (int64_t m : {1, 2, 3, 5})
      for (int64_t n : {1, 17, 31, 37})
        for (int64_t k : {1, 31, 67, 131, 257}) {
          const auto u = random_codes(rng, n, k, bits);
          const kernels::LowbitWeights W = kernels::pack_lowbit(u.data(), n, k, bits);
          const int64_t lda = W.kp + 5, ldc = n + 3;  // strides beyond the padded sizes
          std::vector<uint8_t> A(static_cast<size_t>(m * lda), 0);
          for (int64_t i = 0; i < m; ++i)
            for (int64_t q = 0; q < k; ++q) A[i * lda + q] = static_cast<uint8_t>(rng());
          A[0] = 255;
          std::vector<int32_t> ref(static_cast<size_t>(m * ldc), 0);
          kernels::gemm_lowbit_u8_ref(A.data(), lda, m, u.data(), n, k, bits, ref.data(), ldc);
          for (auto isa : isas())
            for (int threads : {1, 2}) {
              std::vector<int32_t> C(static_cast<size_t>(m * ldc), 0);
              kernels::gemm_lowbit_u8(A.data(), lda, m, W, C.data(), ldc, isa, threads);
              ASSERT_EQ(C, ref) << kernels::isa_name(isa) << " bits=" << bits << " m=" << m << " n=" << n
                                << " k=" << k;
            }
        }
}

TEST(Lowbit, IntegerLargeKAtExtremeCodesDoesNotOverflow) {
  const int64_t m = 3, n = 19, k = 4608;  // 3x3x512; AVX2 would saturate vpmaddubsw if the split were wrong
  for (int bits : kLowbitWidths)
    for (uint8_t code : {uint8_t(0), uint8_t((1u << bits) - 1)}) {
      std::vector<uint8_t> u(static_cast<size_t>(n * k), code), A(static_cast<size_t>(m * kernels::lowbit_kp(k)), 255);
      const kernels::LowbitWeights W = kernels::pack_lowbit(u.data(), n, k, bits);
      std::vector<int32_t> ref(static_cast<size_t>(m * n));
      kernels::gemm_lowbit_u8_ref(A.data(), W.kp, m, u.data(), n, k, bits, ref.data(), n);
      EXPECT_EQ(ref[0], int32_t(255 * (int32_t(code) - W.code_offset) * k));
      for (auto isa : isas()) {
        std::vector<int32_t> C(ref.size());
        kernels::gemm_lowbit_u8(A.data(), W.kp, m, W, C.data(), n, isa, 1);
        EXPECT_EQ(C, ref) << kernels::isa_name(isa) << " bits=" << bits << " code=" << int(code);
      }
    }
}

// The float kernel follows the reference's summation order exactly (gemv_lowbit.h), so every path
// must give the same bits; the reference itself is checked against a double-precision dequantized
// product.
TEST(Lowbit, FloatEveryWidthPathAndGranularityMatchesReference) {
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> ud(-1, 1);
  for (int bits : kLowbitWidths)
    for (int64_t m : {1, 2, 3, 5})
      for (int64_t n : {1, 17, 37})
        for (int64_t k : {1, 31, 67, 131, 257})
          for (int64_t gs : {k, int64_t(32), int64_t(64)}) {  // per channel, per group
            if (gs > k && gs != k) continue;
            const auto u = random_codes(rng, n, k, bits);
            const int64_t groups = (k + gs - 1) / gs;
            std::vector<float> scale(static_cast<size_t>(n * groups)), bias(static_cast<size_t>(n));
            std::vector<int32_t> zero(scale.size());
            for (auto& s : scale) s = 0.01f + 0.1f * std::abs(ud(rng));
            for (auto& z : zero) z = static_cast<int32_t>(rng() % (1u << bits));
            for (auto& b : bias) b = ud(rng);
            kernels::LowbitWeights W = kernels::pack_lowbit(u.data(), n, k, bits);
            ASSERT_EQ(kernels::lowbit_float_unsupported(gs, k), "");
            kernels::set_lowbit_dequant(W, scale.data(), zero.data(), gs);
            const int64_t ldx = k + 3, ldy = n + 2;
            std::vector<float> X(static_cast<size_t>(m * ldx));
            for (auto& x : X) x = ud(rng);
            std::vector<float> ref(static_cast<size_t>(m * ldy), 0.0f);
            kernels::gemm_lowbit_f32_ref(X.data(), ldx, m, u.data(), n, k, scale.data(), zero.data(), gs,
                                         bias.data(), ref.data(), ldy);
            for (int64_t i = 0; i < m; ++i)
              for (int64_t j = 0; j < n; ++j) {
                double s = bias[j], mag = std::abs(bias[j]);
                for (int64_t q = 0; q < k; ++q) {
                  const size_t p = static_cast<size_t>(j * groups + q / gs);
                  const double w = double(scale[p]) * (double(u[j * k + q]) - zero[p]);
                  s += double(X[i * ldx + q]) * w;
                  mag += std::abs(double(X[i * ldx + q]) * w);
                }
                ASSERT_NEAR(ref[i * ldy + j], s, 1e-6 * (1 + mag)) << bits << " " << m << "x" << n << "x" << k;
              }
            for (auto isa : isas())
              for (int threads : {1, 2}) {
                std::vector<float> Y(ref.size(), 0.0f);
                kernels::gemm_lowbit_f32(X.data(), ldx, m, W, bias.data(), Y.data(), ldy, isa, threads);
                ASSERT_EQ(Y, ref) << kernels::isa_name(isa) << " bits=" << bits << " m=" << m << " n=" << n
                                  << " k=" << k << " gs=" << gs;
              }
          }
}

TEST(Lowbit, FloatGroupsThatAreNotSuperBlocksSayWhy) {
  EXPECT_EQ(kernels::lowbit_float_unsupported(48, 100), "group size 48 is not a multiple of 32");
  EXPECT_EQ(kernels::lowbit_float_unsupported(48, 40), "");  // one group per row
  EXPECT_EQ(kernels::lowbit_float_unsupported(96, 1000), "");
}

TEST(Sgemm, MatchesDoubleReference) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1, 1);
  for (int64_t m : {1, 3, 6, 31})
    for (int64_t n : {1, 5, 16, 17, 32, 67})
      for (int64_t k : {1, 2, 129}) {
        std::vector<float> A(m * k), B(k * n), C(m * n, 7.0f);
        for (auto& v : A) v = u(rng);
        for (auto& v : B) v = u(rng);
        kernels::sgemm(A.data(), k, B.data(), n, C.data(), n, m, n, k, false, 2);
        std::vector<float> R(m * n, 3.0f), Racc(m * n, 0.25f);
        kernels::sgemm(A.data(), k, B.data(), n, R.data(), n, m, n, k, false, 1, kernels::Isa::kRef);
        kernels::sgemm(A.data(), k, B.data(), n, Racc.data(), n, m, n, k, true, 1, kernels::Isa::kRef);
        ASSERT_EQ(R, C) << "default path vs reference";
        for (auto isa : {kernels::Isa::kAvx2, kernels::Isa::kAvx512}) {  // every path: the same bits
          if (!kernels::isa_supported(isa)) continue;
          std::vector<float> D(m * n, 3.0f), Dacc(m * n, 0.25f);
          kernels::sgemm(A.data(), k, B.data(), n, D.data(), n, m, n, k, false, 1, isa);
          kernels::sgemm(A.data(), k, B.data(), n, Dacc.data(), n, m, n, k, true, 1, isa);
          ASSERT_EQ(D, C) << kernels::isa_name(isa);
          ASSERT_EQ(Dacc, Racc) << kernels::isa_name(isa) << " accumulate";
        }
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j) {
            double s = 0;
            for (int64_t q = 0; q < k; ++q) s += double(A[i * k + q]) * B[q * n + j];
            ASSERT_NEAR(C[i * n + j], s, 1e-5 * (1 + k)) << m << "x" << n << "x" << k;
          }
      }
}

// quantize_u8 (x * (1/scale)) on every path equals its scalar reference bit for bit, ties and their
// neighbours included; the reference equals the scheme's x / scale except beside a tie.
// The embedding bag's dequantize-add: every path gives the reference loop's bits (the same float
// operations in the same order; no FMA), at every length (vector bodies and tails).
TEST(EmbedAddU8, EveryPathMatchesReferenceExactly) {
  std::mt19937 rng(12);
  std::uniform_real_distribution<float> u(-3.0f, 3.0f), us(1e-3f, 0.2f);
  for (int64_t n = 0; n <= 70; ++n)
    for (float qmin : {0.0f, -128.0f}) {
      std::vector<uint8_t> c(static_cast<size_t>(n));
      for (auto& v : c) v = static_cast<uint8_t>(rng());
      std::vector<float> base(static_cast<size_t>(n));
      for (auto& v : base) v = u(rng);
      const float s = us(rng), z = qmin + static_cast<float>(rng() % 256);
      std::vector<float> want = base;
      kernels::embed_add_u8_ref(c.data(), n, s, qmin, z, want.data());
      for (kernels::Isa isa : {kernels::Isa::kAvx2, kernels::Isa::kAvx512}) {
        if (!kernels::isa_supported(isa)) continue;
        std::vector<float> got = base;
        kernels::embed_add_u8(c.data(), n, s, qmin, z, got.data(), isa);
        ASSERT_EQ(got, want) << kernels::isa_name(isa) << " n=" << n;
      }
    }
}

TEST(QuantizeU8, EveryPathMatchesReferenceAndSchemeAwayFromTies) {
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0, 3);
  for (float scale : {0.037f, 0.1f, 1.0f / 255, 6.0f / 255, 0.0123457f, 3.0f})
  for (int bits : {2, 4, 8})
    for (bool sym : {false, true}) {
      QScheme sc;
      sc.bits = bits;
      sc.symmetric = sym;
      const float zp = sym ? 0.0f : float((1 << bits) / 3);
      std::vector<float> x(1003);
      for (size_t i = 0; i < x.size(); ++i)  // every third value an exact tie k + 0.5 (in units of s)
        x[i] = i % 3 ? nd(rng) : (float(int(i % 41) - 20) + 0.5f) * scale;
      x[1] = 1e30f;
      x[2] = -1e30f;
      for (size_t i = 3; i + 2 < x.size(); i += 30) {  // the floats just beside a tie
        x[i + 1] = std::nextafter(x[i], 1e9f);
        x[i + 2] = std::nextafter(x[i], -1e9f);
      }
      const int64_t n = static_cast<int64_t>(x.size());
      const float lo = float(sc.qmin()), hi = float(sc.qmax());
      std::vector<uint8_t> want(x.size());
      kernels::quantize_u8_ref(x.data(), n, scale, zp, lo, hi, want.data());
      // The reference multiplies by 1/scale: the scheme's division gives the same code except
      // within a few ulp of a tie, and then one code apart.
      for (size_t i = 0; i < x.size(); ++i) {
        const float sim = ref::quantize_value(x[i], scale, zp, sc), got = float(want[i]) + lo;
        if (got == sim) continue;
        const double t = double(x[i]) / scale;
        ASSERT_EQ(std::fabs(got - sim), 1.0f) << "x=" << x[i] << " scale=" << scale;
        ASSERT_LT(std::fabs(std::fabs(t - std::nearbyint(t)) - 0.5), 4e-7 * std::fabs(t) + 1e-30)
            << "x=" << x[i] << " scale=" << scale << ": differs from the scheme away from a tie";
      }
      for (auto isa : isas()) {
        std::vector<uint8_t> out(x.size());
        kernels::quantize_u8(x.data(), n, scale, zp, lo, hi, out.data(), isa);
        for (size_t i = 0; i < x.size(); ++i)
          ASSERT_EQ(out[i], want[i]) << kernels::isa_name(isa) << " x=" << x[i] << " bits=" << bits;
      }
    }
}

// The vectorised exp / erf of the runtime's Softmax and Erf: close to libm everywhere (special
// values included) and the same bits on every path.
TEST(Vmath, ExpErfCloseToLibmAndIdenticalOnEveryPath) {
  std::vector<float> x;
  for (float v = -100.0f; v <= 100.0f; v += 0.0137f) x.push_back(v);
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 88.7f, 88.72f, -87.3f, -87.4f, INFINITY, -INFINITY, NAN}) x.push_back(v);
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<float> e0(x.size()), f0(x.size()), e(x.size()), f(x.size());
  kernels::exp_f32(x.data(), e0.data(), n, kernels::Isa::kRef);
  kernels::erf_f32(x.data(), f0.data(), n, kernels::Isa::kRef);
  for (int64_t i = 0; i < n; ++i) {
    const double ex = std::exp(double(x[i])), fx = std::erf(double(x[i]));
    if (std::isnan(x[i])) {
      EXPECT_TRUE(std::isnan(e0[i]) && std::isnan(f0[i]));
      continue;
    }
    if (ex < 1.2e-38) EXPECT_LE(e0[i], 1.2e-38f) << x[i];
    else if (ex > 3.4028234e38) EXPECT_TRUE(std::isinf(e0[i])) << x[i];
    else EXPECT_NEAR(e0[i], ex, 4e-7 * ex) << "exp(" << x[i] << ")";
    EXPECT_NEAR(f0[i], fx, 2e-7) << "erf(" << x[i] << ")";
  }
  for (auto isa : isas()) {
    kernels::exp_f32(x.data(), e.data(), n, isa);
    kernels::erf_f32(x.data(), f.data(), n, isa);
    for (int64_t i = 0; i < n; ++i) {
      if (std::isnan(x[i])) continue;
      ASSERT_EQ(e[i], e0[i]) << kernels::isa_name(isa) << " exp(" << x[i] << ")";
      ASSERT_EQ(f[i], f0[i]) << kernels::isa_name(isa) << " erf(" << x[i] << ")";
    }
  }
}

// The fused GELU (erf form) on every path, the baseline included, against its double reference:
// within 2e-7 relative to 1 + |x| (erf's absolute error times |x| / 2, plus rounding), the tail
// of a partial block included, special values passed through as the formula gives them.
TEST(Gelu, EveryPathCloseToDoubleReference) {
  std::vector<float> x;
  for (float v = -12.0f; v <= 12.0f; v += 0.00731f) x.push_back(v);
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 50.0f, -50.0f, 1e20f, -1e20f, INFINITY, NAN}) x.push_back(v);
  const float c = 1.41421354f;  // sqrt(2) as torch exports it
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<float> want(x.size()), got(x.size());
  kernels::gelu_erf_f32_ref(x.data(), want.data(), n, c);
  for (auto isa : {kernels::Isa::kRef, kernels::Isa::kAvx2, kernels::Isa::kAvx512}) {
    if (!kernels::isa_supported(isa)) continue;
    for (int64_t len : {n, n - 3}) {  // (n - 3: a partial last block)
      std::fill(got.begin(), got.end(), -7.0f);
      kernels::gelu_erf_f32(x.data(), got.data(), len, c, isa);
      for (int64_t i = 0; i < len; ++i) {
        if (std::isnan(want[i])) {
          EXPECT_TRUE(std::isnan(got[i])) << kernels::isa_name(isa) << " gelu(" << x[i] << ")";
          continue;
        }
        if (std::isinf(want[i])) {
          EXPECT_EQ(got[i], want[i]) << kernels::isa_name(isa) << " gelu(" << x[i] << ")";
          continue;
        }
        EXPECT_NEAR(got[i], want[i], 2e-7 * (1.0 + std::fabs(x[i]))) << kernels::isa_name(isa) << " gelu(" << x[i] << ")";
      }
      if (len < n) {
        EXPECT_EQ(got[len], -7.0f) << "wrote past the end";
      }
    }
  }
}

TEST(MaxPool, MatchesReferenceExactlyOnEveryGeometry) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd;
  // (H, W, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, ceil)
  const std::vector<std::array<int64_t, 13>> cases = {
      {112, 112, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0},  // ResNet / ShuffleNet stems
      {7, 9, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 1},      // ceil_mode: a last window past the input
      {10, 11, 3, 2, 1, 3, 2, 1, 2, 0, 1, 2, 0},    // dilation, stride 3, asymmetric pads
      {5, 5, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, 0},      // windows mostly padding
  };
  for (const auto& c : cases) {
    kernels::MaxPool2d g;
    g.H = c[0], g.W = c[1], g.kh = c[2], g.kw = c[3], g.sh = c[4], g.sw = c[5], g.dh = c[6], g.dw = c[7];
    g.pt = c[8], g.pl = c[9];
    auto out = [&](int64_t in, int64_t k, int64_t s, int64_t d, int64_t p0, int64_t p1) {
      const int64_t span = in + p0 + p1 - ((k - 1) * d + 1);
      int64_t n = c[12] ? (span + s - 1) / s + 1 : span / s + 1;
      if (c[12] && (n - 1) * s >= in + p0) --n;
      return n;
    };
    g.OH = out(g.H, g.kh, g.sh, g.dh, g.pt, c[10]);
    g.OW = out(g.W, g.kw, g.sw, g.dw, g.pl, c[11]);
    const int64_t planes = 6;
    std::vector<float> x(planes * g.H * g.W);
    for (auto& v : x) v = nd(rng);
    x[3] = std::nanf("");  // NaN propagates to every window holding it
    std::vector<float> want(planes * g.OH * g.OW), got(want.size(), 0.0f);
    kernels::maxpool2d_f32_ref(x.data(), want.data(), planes, g);
    for (int threads : {1, 2}) {
      kernels::maxpool2d_f32(x.data(), got.data(), planes, g, threads);
      for (size_t i = 0; i < want.size(); ++i) {
        if (std::isnan(want[i])) EXPECT_TRUE(std::isnan(got[i])) << i;
        else ASSERT_EQ(got[i], want[i]) << i << " H" << g.H << " W" << g.W;
      }
    }
  }
}

TEST(Isa, EnvironmentOverride) {
  const char* old = std::getenv("MIXQ_ISA");
  std::string saved = old ? old : "";
  setenv("MIXQ_ISA", "ref", 1);
  EXPECT_EQ(kernels::default_isa(), kernels::Isa::kRef);
  setenv("MIXQ_ISA", "sse9", 1);
  EXPECT_THROW(kernels::default_isa(), Error);
  if (kernels::isa_supported(kernels::Isa::kAvx2)) {
    setenv("MIXQ_ISA", "avx2", 1);
    EXPECT_EQ(kernels::default_isa(), kernels::Isa::kAvx2);
  }
  if (old) setenv("MIXQ_ISA", saved.c_str(), 1); else unsetenv("MIXQ_ISA");
}

}  // namespace
}  // namespace mixq::test
