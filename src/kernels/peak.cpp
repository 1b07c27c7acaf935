#include "kernels/peak.h"

#include <chrono>
#include <mutex>

namespace mixq::kernels {

namespace {

// Seconds of fn(iters), the best of three (another process may take the core for a moment).
template <typename Fn>
double best_seconds(Fn fn, long iters, volatile double* sink) {
  double best = 1e30;
  for (int r = 0; r < 3; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    *sink = *sink + static_cast<double>(fn(iters));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s < best) best = s;
  }
  return best;
}

Peak measure(Isa isa) {
  Peak p;
  if (isa == Isa::kRef) return p;
  constexpr long kIters = 200000;  // 2.4M instructions per loop: a few ms
  static volatile double sink = 0;
  if (isa == Isa::kAvx512) {
    p.int8_macs = 12.0 * kIters * 64 / best_seconds(peak_loop_int8_avx512, kIters, &sink);
    p.fp32_macs = 12.0 * kIters * 16 / best_seconds(peak_loop_fp32_avx512, kIters, &sink);
  } else {
    p.int8_macs = 12.0 * kIters * 32 / best_seconds(peak_loop_int8_avx2, kIters, &sink);
    p.fp32_macs = 12.0 * kIters * 8 / best_seconds(peak_loop_fp32_avx2, kIters, &sink);
  }
  return p;
}

}  // namespace

Peak measured_peak(Isa isa) {
  static std::mutex mu;
  static Peak cache[3];
  static bool done[3] = {false, false, false};
  std::lock_guard<std::mutex> lock(mu);
  const int i = static_cast<int>(isa);
  if (!done[i]) {
    cache[i] = measure(isa);
    done[i] = true;
  }
  return cache[i];
}

}  // namespace mixq::kernels
