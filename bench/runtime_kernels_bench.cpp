// Micro-benchmarks of the runtime's kernels (Google Benchmark), each with the machine limit it is
// compared with measured in the same run:
//   BM_Triad         memory bandwidth (a = b + s*c over 3 x 64 MiB), bytes/s
//   BM_GemvU8S8      batch-1 integer GEMV (the W*A8 layers' path at batch 1) on a 64 MiB int8
//                    weight: bytes of weight read per second, to compare with BM_Triad
//   BM_VnniPeak      8 independent vpdpbusd chains: the VNNI MAC/s ceiling of one core
//   BM_GemmU8S8      integer GEMM 256 x 256 x 1024 per ISA path, MAC/s, to compare with BM_VnniPeak
//   BM_GemvLowbit    batch-1 integer GEMV on a weight kept at 2-8 bits (gemv_lowbit.h), >= 64 MiB of
//                    packed codes (k = 16384): bytes of packed weight read per second, vs BM_Triad
//   BM_GemvLowbitF32 the same with float activations and per-channel dequantization in registers
//   BM_ConvEpi       a small layer's GEMM and requantizing epilogue (784 pixels x 64 channels, k =
//                    16 / 64 / 144, u8 codes out, Relu, column offsets) on AVX-512: the int32 sums
//                    alone (mode 0), sums then epilogue_u8 as a second pass (1), the epilogue in
//                    the GEMM's tiles (2, gemm_epi.h)
//   BM_Depthwise     a 3x3 depthwise layer's sums, all output rows (MobileNetV2 shapes: 96 channels
//                    at 14x14 stride 1, 64 at 28x28 stride 2, 144 at 56x56 stride 1) on AVX-512:
//                    tap pairs (vpdpwssd, kernel 0) vs tap quads (vpdpbusd on interleaved rows, 1;
//                    2: weights beyond int8, split in two vpdpbusd)
//   BM_LinearInt8 / BM_LinearLowbit  a 256 x 1152 layer (ResNet's 3x3x128 conv) at m = 1..256
//                    rows, in cache: where the low-bit kernel stops paying (the runtime's rule)
//   BM_TriadDram / BM_GemvLowbitDram / BM_GemvLowbitF32Dram  the same at 1.5 GiB per array /
//                    weight, beyond this machine's 480 MiB L3 (64 MiB arrays partly stay in it);
//                    skipped unless MIXQ_BENCH_DRAM=1 (4.5 GiB of memory, a minute of set-up)
// Run: build/bench/mixq_runtime_kernels_bench (one thread; see BENCHMARKS.md).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <map>
#include <string>
#include <memory>
#include <random>
#include <vector>

#include "kernels/depthwise_u8.h"
#include "kernels/epilogue.h"
#include "kernels/gemm_epi.h"
#include "kernels/gemm_u8s8.h"
#include "kernels/gemv_lowbit.h"
#include "kernels/isa.h"

namespace {

using mixq::kernels::Isa;

void BM_Triad(benchmark::State& st) {
  const size_t n = 16u << 20;  // 16 Mi floats = 64 MiB per array
  std::vector<float> a(n, 0), b(n, 1), c(n, 2);
  for (auto _ : st) {
    for (size_t i = 0; i < n; ++i) a[i] = b[i] + 3.0f * c[i];
    benchmark::DoNotOptimize(a.data());
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(n) * 12);
}
BENCHMARK(BM_Triad)->Unit(benchmark::kMillisecond);

void BM_GemvU8S8(benchmark::State& st) {
  const Isa isa = static_cast<Isa>(st.range(0));
  if (!mixq::kernels::isa_supported(isa)) {
    st.SkipWithError("ISA not supported here");
    return;
  }
  const int64_t n = 8192, k = 8192;
  std::vector<int8_t> B(static_cast<size_t>(n * k));
  std::mt19937 rng(1);
  for (auto& v : B) v = static_cast<int8_t>(rng());
  const auto P = mixq::kernels::pack_b(B.data(), n, k, isa);
  std::vector<uint8_t> A(static_cast<size_t>(P.kp), 7);
  std::vector<int32_t> C(static_cast<size_t>(n));
  for (auto _ : st) {
    mixq::kernels::gemm_u8s8(A.data(), P.kp, 1, P, C.data(), n, 1);
    benchmark::DoNotOptimize(C.data());
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * n * P.kp);
  st.SetLabel(mixq::kernels::isa_name(isa));
}
BENCHMARK(BM_GemvU8S8)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

void BM_VnniPeak(benchmark::State& st) {
  if (!mixq::kernels::isa_supported(Isa::kAvx512)) {
    st.SkipWithError("no AVX-512 VNNI");
    return;
  }
  const int64_t iters = 1 << 20;
  for (auto _ : st) benchmark::DoNotOptimize(mixq::kernels::vnni_peak_loop(iters));
  st.counters["MAC/s"] = benchmark::Counter(double(iters) * 8 * 64, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_VnniPeak)->Unit(benchmark::kMillisecond);

void BM_GemmU8S8(benchmark::State& st) {
  const Isa isa = static_cast<Isa>(st.range(0));
  if (!mixq::kernels::isa_supported(isa)) {
    st.SkipWithError("ISA not supported here");
    return;
  }
  const int64_t m = 256, n = 256, k = 1024;
  std::vector<int8_t> B(static_cast<size_t>(n * k));
  std::vector<uint8_t> A(static_cast<size_t>(m * k));
  std::mt19937 rng(2);
  for (auto& v : B) v = static_cast<int8_t>(rng());
  for (auto& v : A) v = static_cast<uint8_t>(rng());
  const auto P = mixq::kernels::pack_b(B.data(), n, k, isa);
  std::vector<int32_t> C(static_cast<size_t>(m * n));
  for (auto _ : st) {
    mixq::kernels::gemm_u8s8(A.data(), k, m, P, C.data(), n, 1);
    benchmark::DoNotOptimize(C.data());
  }
  st.counters["MAC/s"] = benchmark::Counter(double(m * n * k), benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel(mixq::kernels::isa_name(isa));
}
BENCHMARK(BM_GemmU8S8)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

void BM_ConvEpi(benchmark::State& st) {
  namespace k = mixq::kernels;
  if (!k::isa_supported(Isa::kAvx512)) {
    st.SkipWithError("no AVX-512 VNNI");
    return;
  }
  const int mode = static_cast<int>(st.range(0));
  const int64_t m = 784, n = 64, kk = st.range(1), kp = k::gemm_kp(kk);
  std::mt19937 rng(4);
  std::vector<int8_t> B(static_cast<size_t>(n * kk));
  std::vector<uint8_t> A(static_cast<size_t>(m * kp));
  for (auto& v : B) v = static_cast<int8_t>(rng());
  for (auto& v : A) v = static_cast<uint8_t>(rng());
  const auto P = k::pack_b(B.data(), n, kk, Isa::kAvx512);
  std::vector<int32_t> C(static_cast<size_t>(m * n)), off(n);
  std::vector<float> scale(n), bias(n);
  for (int64_t j = 0; j < n; ++j) {
    off[j] = static_cast<int32_t>(rng() % 2001) - 1000;
    scale[j] = 1e-4f * float(1 + rng() % 100);
    bias[j] = 0.01f * float(int(rng() % 200) - 100);
  }
  k::EpiRows e;
  e.acc = C.data();
  e.m = m;
  e.n = e.lda = n;
  e.off = off.data();
  e.scale = scale.data();
  e.bias = bias.data();
  e.act = k::ActClamp{0.0f, INFINITY};
  const k::OutQuant q{0.05f, 0.0f, 0.0f, 255.0f};
  std::vector<uint8_t> y(static_cast<size_t>(m * n));
  for (auto _ : st) {
    if (mode == 2) {
      k::gemm_u8s8_epi(A.data(), kp, m, P, e, {&q, y.data(), nullptr, n}, 1);
    } else {
      k::gemm_u8s8(A.data(), kp, m, P, C.data(), n, 1);
      if (mode == 1) k::epilogue_u8(e, q, y.data(), n, Isa::kAvx512);
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(C.data());
  }
  st.counters["MAC/s"] = benchmark::Counter(double(m * n * kk), benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel(mode == 0 ? "sums only" : mode == 1 ? "sums + epilogue pass" : "epilogue in tiles");
}
BENCHMARK(BM_ConvEpi)->ArgsProduct({{0, 1, 2}, {16, 64, 144}})->Unit(benchmark::kMicrosecond);

void BM_Depthwise(benchmark::State& st) {
  namespace k = mixq::kernels;
  const int kernel = static_cast<int>(st.range(0)), shape = static_cast<int>(st.range(1));
  // kernels 3, 4: AVX2 (tap pairs; the compiler-vectorised body the runtime used before them)
  if (!k::isa_supported(kernel >= 3 ? Isa::kAvx2 : Isa::kAvx512)) {
    st.SkipWithError(kernel >= 3 ? "no AVX2" : "no AVX-512 VNNI");
    return;
  }
  k::DepthwiseShape s;
  const int64_t dims[3][3] = {{96, 14, 1}, {64, 28, 2}, {144, 56, 1}};
  s.C = dims[shape][0];
  s.H = s.W = dims[shape][1];
  s.SH = s.SW = dims[shape][2];
  s.KH = s.KW = 3;
  s.PT = s.PL = 1;
  s.OH = s.OW = (s.H + 2 - 3) / s.SH + 1;
  const int64_t T = 9;
  std::mt19937 rng(6);
  std::vector<uint8_t> a(static_cast<size_t>(s.H * s.W * s.C)), zrow(static_cast<size_t>(s.C), 100);
  std::vector<int16_t> w(static_cast<size_t>(T * s.C));
  for (auto& v : a) v = static_cast<uint8_t>(rng());
  // kernel 2: weights beyond int8 (an asymmetric 8-bit grid), the quads' split form
  for (auto& v : w) v = static_cast<int16_t>(kernel == 2 ? static_cast<int>(rng() % 511) - 255 : static_cast<int>(rng() % 256) - 128);
  const auto w2 = k::interleave_tap_pairs(w.data(), T, s.C);
  const auto nz = k::tap_pair_zero_terms(w2.data(), T, s.C, 100);
  const k::DwQuads q = k::pack_dw_quads(w.data(), s, 100);
  k::DwQuadRows rows;
  k::avector<int32_t> acc(static_cast<size_t>(s.OW * s.C));
  for (auto _ : st) {
    rows.reset();
    for (int64_t oy = 0; oy < s.OH; ++oy) {
      if (kernel == 0) k::depthwise_u8_acc_row_pairs_avx512(a.data(), nz.data(), w2.data(), zrow.data(), s, oy, acc.data());
      else if (kernel == 3) k::depthwise_u8_acc_row_pairs_avx2(a.data(), nz.data(), w2.data(), zrow.data(), s, oy, acc.data());
      else if (kernel == 4) k::depthwise_u8_acc_row_avx2(a.data(), 100, w.data(), s, oy, acc.data());
      else k::depthwise_u8_acc_row_quads_avx512(a.data(), q, zrow.data(), s, oy, rows, acc.data());
      benchmark::DoNotOptimize(acc.data());
    }
  }
  st.counters["MAC/s"] = benchmark::Counter(double(s.OH * s.OW * s.C * T), benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel(kernel == 0 ? "tap pairs" : kernel == 1 ? "tap quads" : kernel == 2 ? "tap quads, split weights"
              : kernel == 3 ? "tap pairs avx2" : "vectorised body avx2");
}
BENCHMARK(BM_Depthwise)->ArgsProduct({{0, 1, 2, 3, 4}, {0, 1, 2}})->Unit(benchmark::kMicrosecond);

// One packed weight per width, shared by every ISA and both kernels (packing 2^28 codes takes a
// while): n x 16384 with n chosen so the codes fill >= 64 MiB.
const mixq::kernels::LowbitWeights& big_lowbit(int bits) {
  static std::map<int, std::unique_ptr<mixq::kernels::LowbitWeights>> cache;
  auto& slot = cache[bits];
  if (!slot) {
    const int64_t k = 16384, n = ((int64_t(64) << 23) / (bits * k) + 15) / 16 * 16;
    std::vector<uint8_t> u(static_cast<size_t>(n * k));
    std::mt19937 rng(4);
    for (auto& v : u) v = static_cast<uint8_t>(rng() & ((1u << bits) - 1));
    slot = std::make_unique<mixq::kernels::LowbitWeights>(mixq::kernels::pack_lowbit(u.data(), n, k, bits));
    std::vector<float> scale(static_cast<size_t>(n), 0.01f);
    std::vector<int32_t> zero(static_cast<size_t>(n), 1 << (bits - 1));
    mixq::kernels::set_lowbit_dequant(*slot, scale.data(), zero.data(), k);
  }
  return *slot;
}

// "avx512 4-bit 8192x16384": the path and the weight of a low-bit benchmark row.
std::string lowbit_label(Isa isa, int bits, const mixq::kernels::LowbitWeights& W) {
  return std::string(mixq::kernels::isa_name(isa)) + " " + std::to_string(bits) + "-bit " + std::to_string(W.n) +
         "x" + std::to_string(W.k);
}

void BM_GemvLowbit(benchmark::State& st) {
  const Isa isa = static_cast<Isa>(st.range(0));
  const int bits = static_cast<int>(st.range(1));
  if (!mixq::kernels::isa_supported(isa)) {
    st.SkipWithError("ISA not supported here");
    return;
  }
  const auto& W = big_lowbit(bits);
  std::vector<uint8_t> A(static_cast<size_t>(W.kp), 0);
  for (int64_t i = 0; i < W.k; ++i) A[i] = static_cast<uint8_t>(i * 7);
  std::vector<int32_t> C(static_cast<size_t>(W.n));
  for (auto _ : st) {
    mixq::kernels::gemm_lowbit_u8(A.data(), W.kp, 1, W, C.data(), W.n, isa, 1);
    benchmark::DoNotOptimize(C.data());
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(W.data.size()));
  st.SetLabel(lowbit_label(isa, bits, W));
}
BENCHMARK(BM_GemvLowbit)
    ->ArgsProduct({{1, 2}, {2, 3, 4, 5, 6, 8}})
    ->Unit(benchmark::kMillisecond);

void BM_GemvLowbitF32(benchmark::State& st) {
  const Isa isa = static_cast<Isa>(st.range(0));
  const int bits = static_cast<int>(st.range(1));
  if (!mixq::kernels::isa_supported(isa)) {
    st.SkipWithError("ISA not supported here");
    return;
  }
  const auto& W = big_lowbit(bits);
  std::vector<float> X(static_cast<size_t>(W.kp));
  for (int64_t i = 0; i < W.kp; ++i) X[i] = float(i % 13) * 0.1f;
  std::vector<float> Y(static_cast<size_t>(W.n));
  for (auto _ : st) {
    mixq::kernels::gemm_lowbit_f32(X.data(), W.kp, 1, W, nullptr, Y.data(), W.n, isa, 1);
    benchmark::DoNotOptimize(Y.data());
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(W.data.size()));
  st.SetLabel(lowbit_label(isa, bits, W));
}
BENCHMARK(BM_GemvLowbitF32)
    ->ArgsProduct({{1, 2}, {2, 3, 4, 5, 6, 8}})
    ->Unit(benchmark::kMillisecond);

// The runtime's choice between the int8 GEMM and the low-bit kernel for an in-cache layer: time
// per call at m rows (arg), AVX-512, 4-bit codes (in [0, 15], shifted into int8 for the int8 path).
constexpr int64_t kLayerN = 256, kLayerK = 1152;

void BM_LinearInt8(benchmark::State& st) {
  const int64_t m = st.range(0);
  const Isa isa = mixq::kernels::detect_isa();
  std::vector<int8_t> B(static_cast<size_t>(kLayerN * kLayerK));
  std::mt19937 rng(6);
  for (auto& v : B) v = static_cast<int8_t>(rng() % 16);
  const auto P = mixq::kernels::pack_b(B.data(), kLayerN, kLayerK, isa);
  std::vector<uint8_t> A(static_cast<size_t>(m * P.kp), 3);
  std::vector<int32_t> C(static_cast<size_t>(m * kLayerN));
  for (auto _ : st) {
    mixq::kernels::gemm_u8s8(A.data(), P.kp, m, P, C.data(), kLayerN, 1);
    benchmark::DoNotOptimize(C.data());
  }
  st.counters["MAC/s"] =
      benchmark::Counter(double(m * kLayerN * kLayerK), benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel(mixq::kernels::isa_name(isa));
}
BENCHMARK(BM_LinearInt8)->RangeMultiplier(2)->Range(1, 256)->Unit(benchmark::kMicrosecond);

void BM_LinearLowbit(benchmark::State& st) {
  const int64_t m = st.range(0);
  const Isa isa = mixq::kernels::detect_isa();
  std::vector<uint8_t> u(static_cast<size_t>(kLayerN * kLayerK));
  std::mt19937 rng(6);
  for (auto& v : u) v = static_cast<uint8_t>(rng() % 16);
  const auto W = mixq::kernels::pack_lowbit(u.data(), kLayerN, kLayerK, 4);
  std::vector<uint8_t> A(static_cast<size_t>(m * W.kp), 3);
  std::vector<int32_t> C(static_cast<size_t>(m * kLayerN));
  for (auto _ : st) {
    mixq::kernels::gemm_lowbit_u8(A.data(), W.kp, m, W, C.data(), kLayerN, isa, 1);
    benchmark::DoNotOptimize(C.data());
  }
  st.counters["MAC/s"] =
      benchmark::Counter(double(m * kLayerN * kLayerK), benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel(mixq::kernels::isa_name(isa));
}
BENCHMARK(BM_LinearLowbit)->RangeMultiplier(2)->Range(1, 256)->Unit(benchmark::kMicrosecond);

bool dram_enabled(benchmark::State& st) {
  const char* e = std::getenv("MIXQ_BENCH_DRAM");
  if (e && std::string(e) == "1") return true;
  st.SkipWithError("set MIXQ_BENCH_DRAM=1 to run (4.5 GiB)");
  return false;
}

void BM_TriadDram(benchmark::State& st) {
  if (!dram_enabled(st)) return;
  const size_t n = size_t(3) << 27;  // 384 Mi floats = 1.5 GiB per array
  std::vector<float> a(n, 0), b(n, 1), c(n, 2);
  for (auto _ : st) {
    for (size_t i = 0; i < n; ++i) a[i] = b[i] + 3.0f * c[i];
    benchmark::DoNotOptimize(a.data());
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(n) * 12);
}
BENCHMARK(BM_TriadDram)->Unit(benchmark::kMillisecond);

// A 1.5 GiB packed weight made of copies of the 64 MiB one (the codes' values do not change the
// speed; packing 1.5 GiB of 2-bit codes one by one would take minutes).
mixq::kernels::LowbitWeights dram_lowbit(int bits) {
  const auto& small = big_lowbit(bits);
  mixq::kernels::LowbitWeights W = small;
  const int64_t copies = 24;  // 24 x 64 MiB = 1.5 GiB
  W.n = small.n * copies;
  W.data.reserve(small.data.size() * copies);
  W.row_sums.resize(static_cast<size_t>(W.n));
  for (int64_t c = 1; c < copies; ++c) {
    W.data.insert(W.data.end(), small.data.begin(), small.data.end());
    W.scale_p.insert(W.scale_p.end(), small.scale_p.begin(), small.scale_p.end());
    W.zero_p.insert(W.zero_p.end(), small.zero_p.begin(), small.zero_p.end());
  }
  return W;
}

void BM_GemvLowbitDram(benchmark::State& st) {
  if (!dram_enabled(st)) return;
  const int bits = static_cast<int>(st.range(0));
  const auto W = dram_lowbit(bits);
  std::vector<uint8_t> A(static_cast<size_t>(W.kp), 3);
  std::vector<int32_t> C(static_cast<size_t>(W.n));
  for (auto _ : st) {
    mixq::kernels::gemm_lowbit_u8(A.data(), W.kp, 1, W, C.data(), W.n, mixq::kernels::detect_isa(), 1);
    benchmark::DoNotOptimize(C.data());
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(W.data.size()));
  st.SetLabel(std::to_string(bits) + "-bit " + std::to_string(W.n) + "x" + std::to_string(W.k));
}
BENCHMARK(BM_GemvLowbitDram)->Arg(2)->Arg(3)->Arg(4)->Arg(6)->Arg(8)->Unit(benchmark::kMillisecond);

void BM_GemvLowbitF32Dram(benchmark::State& st) {
  if (!dram_enabled(st)) return;
  const int bits = static_cast<int>(st.range(0));
  const auto W = dram_lowbit(bits);
  std::vector<float> X(static_cast<size_t>(W.kp), 0.5f);
  std::vector<float> Y(static_cast<size_t>(W.n));
  for (auto _ : st) {
    mixq::kernels::gemm_lowbit_f32(X.data(), W.kp, 1, W, nullptr, Y.data(), W.n, mixq::kernels::detect_isa(), 1);
    benchmark::DoNotOptimize(Y.data());
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(W.data.size()));
  st.SetLabel(std::to_string(bits) + "-bit " + std::to_string(W.n) + "x" + std::to_string(W.k));
}
BENCHMARK(BM_GemvLowbitF32Dram)->Arg(2)->Arg(4)->Arg(8)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
