// Row reductions shared by the runtime's float ops (ReduceMean/ReduceSum over the last axes,
// Softmax, the fused LayerNorm): 8 independent partial results combined pairwise, so the compiler
// vectorises them and every op that sums a row sums it the same way (fused and unfused LayerNorm
// give the same bits). No libtorch.
#pragma once

#include <cmath>
#include <cstdint>

namespace mixq::rt {

inline float row_sum8(const float* p, int64_t n) {
  float a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t k = 0;
  for (; k + 8 <= n; k += 8)
    for (int j = 0; j < 8; ++j) a[j] += p[k + j];
  for (; k < n; ++k) a[0] += p[k];
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

inline float row_max8(const float* p, int64_t n) {
  float m[8];
  for (int j = 0; j < 8; ++j) m[j] = -INFINITY;
  int64_t k = 0;
  for (; k + 8 <= n; k += 8)
    for (int j = 0; j < 8; ++j) m[j] = p[k + j] > m[j] ? p[k + j] : m[j];
  for (; k < n; ++k) m[0] = p[k] > m[0] ? p[k] : m[0];
  float r = m[0];
  for (int j = 1; j < 8; ++j) r = m[j] > r ? m[j] : r;
  return r;
}

}  // namespace mixq::rt
