// Micro-benchmarks of the runtime's kernels (Google Benchmark), each with the machine limit it is
// compared with measured in the same run:
//   BM_Triad         memory bandwidth (a = b + s*c over 3 x 64 MiB), bytes/s
//   BM_GemvU8S8      batch-1 integer GEMV (the W*A8 layers' path at batch 1) on a 64 MiB int8
//                    weight: bytes of weight read per second, to compare with BM_Triad
//   BM_VnniPeak      8 independent vpdpbusd chains: the VNNI MAC/s ceiling of one core
//   BM_GemmU8S8      integer GEMM 256 x 256 x 1024 per ISA path, MAC/s, to compare with BM_VnniPeak
// Run: build/bench/mixq_runtime_kernels_bench (one thread; see BENCHMARKS.md).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "kernels/gemm_u8s8.h"
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

}  // namespace

BENCHMARK_MAIN();
