#include "kernels/maxpool.h"

#include <omp.h>

#include <algorithm>
#include <limits>

namespace mixq::kernels {

namespace {

inline float max_nan(float a, float v) { return (v > a || v != v) ? v : a; }

// One plane: each output row starts at -inf and takes every (i, j) tap as a pass over the output
// columns whose tap lies inside the input (a strided load the compiler vectorises), instead of a
// bounds check per tap and output.
void plane(const float* x, float* y, const MaxPool2d& g) {
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    float* yr = y + oh * g.OW;
    std::fill(yr, yr + g.OW, ninf);
    for (int64_t i = 0; i < g.kh; ++i) {
      const int64_t h = oh * g.sh - g.pt + i * g.dh;
      if (h < 0 || h >= g.H) continue;
      const float* xr = x + h * g.W;
      for (int64_t j = 0; j < g.kw; ++j) {
        const int64_t off = j * g.dw - g.pl;  // w = ow * sw + off
        // ow in [lo, hi): 0 <= ow * sw + off < W
        const int64_t lo = off >= 0 ? 0 : (-off + g.sw - 1) / g.sw;
        const int64_t hi = std::min(g.OW, g.W - off <= 0 ? 0 : (g.W - off - 1) / g.sw + 1);
        const float* xs = xr + off;
        if (g.sw == 1) {
          for (int64_t ow = lo; ow < hi; ++ow) yr[ow] = max_nan(yr[ow], xs[ow]);
        } else if (g.sw == 2) {
          for (int64_t ow = lo; ow < hi; ++ow) yr[ow] = max_nan(yr[ow], xs[2 * ow]);
        } else {
          for (int64_t ow = lo; ow < hi; ++ow) yr[ow] = max_nan(yr[ow], xs[ow * g.sw]);
        }
      }
    }
  }
}

}  // namespace

void maxpool2d_f32(const float* x, float* y, int64_t planes, const MaxPool2d& g, int threads) {
  const int64_t in = g.H * g.W, out = g.OH * g.OW;
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, planes)));
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1 && !omp_in_parallel())
  for (int64_t p = 0; p < planes; ++p) plane(x + p * in, y + p * out, g);
}

void maxpool2d_f32_ref(const float* x, float* y, int64_t planes, const MaxPool2d& g) {
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        float acc = -std::numeric_limits<float>::infinity();
        for (int64_t i = 0; i < g.kh; ++i)
          for (int64_t j = 0; j < g.kw; ++j) {
            const int64_t h = oh * g.sh - g.pt + i * g.dh, w = ow * g.sw - g.pl + j * g.dw;
            if (h >= 0 && h < g.H && w >= 0 && w < g.W) acc = max_nan(acc, x[p * g.H * g.W + h * g.W + w]);
          }
        y[p * g.OH * g.OW + oh * g.OW + ow] = acc;
      }
}

}  // namespace mixq::kernels
