// Helpers shared by the low-bit kernels' ISA files (gemv_lowbit_avx2.cpp / _avx512.cpp); only
// SSE-level intrinsics, so either file's -m flags compile them. No libtorch.
#pragma once

#include <xmmintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/gemv_lowbit.h"

namespace mixq::kernels::lowbit_simd {

// Software prefetch of the super-block kLowbitPrefetch bytes ahead. Measured on this machine (one
// core, 64 MiB weight): the hardware prefetchers alone held the 2- and 4-bit GEMV at 7-9 GB/s; a
// 1 KiB lead brought it to ~14 GB/s (4 KiB: less).
template <int BITS>
inline void prefetch_ahead(const uint8_t* p) {
  for (int l = 0; l < BITS; ++l)
    _mm_prefetch(reinterpret_cast<const char*>(p + kLowbitPrefetch + 64 * l), _MM_HINT_T0);
}

// Four activation bytes as one int32 (a broadcast operand of the dot-product instructions).
inline int32_t load4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace mixq::kernels::lowbit_simd
