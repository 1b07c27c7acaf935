// This core's measured arithmetic peak, for `mixq profile`'s "% of peak": a short loop of
// independent multiply-accumulate instructions (no memory traffic) timed once per process.
//   int8: u8 x s8 products summed into int32 (AVX-512 VNNI vpdpbusd: 64 per instruction; AVX2
//         vpmaddubsw + vpmaddwd: 32 per pair), what the integer GEMMs issue;
//   fp32: fused multiply-adds (16 or 8 per instruction), what oneDNN's float kernels issue.
// Multiply-accumulates per second on one thread; 0 on the scalar path (no peak claimed). No libtorch.
#pragma once

#include "kernels/isa.h"

namespace mixq::kernels {

struct Peak {
  double int8_macs = 0, fp32_macs = 0;
};

// Measured on the first call for each ISA (about 20 ms), then cached.
Peak measured_peak(Isa isa);

// The loops (peak_avx2.cpp / peak_avx512.cpp, compiled with their -m flags): `iters` rounds of
// 12 independent accumulators; returns a value that depends on the results (so they are kept).
int peak_loop_int8_avx512(long iters);
float peak_loop_fp32_avx512(long iters);
int peak_loop_int8_avx2(long iters);
float peak_loop_fp32_avx2(long iters);

}  // namespace mixq::kernels
