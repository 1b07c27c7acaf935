#include "quant/multipoint_ref.h"

#include <algorithm>
#include <cmath>

namespace mixq::ref {

PointGrid multipoint_grid(int bits, bool symmetric) {
  PointGrid g;
  const int64_t half = int64_t(1) << (bits - 1);
  g.qmin = symmetric ? -half : 0;
  g.qmax = symmetric ? half - 1 : 2 * half - 1;
  g.zero = symmetric ? 0 : half;
  return g;
}

namespace {
// Squared error of r against a * (q - z) with q = clamp(round(r / a) + z); codes written when given.
double point_error(const float* r, int64_t k, const PointGrid& g, float a, float* codes) {
  const float lo = static_cast<float>(g.qmin), hi = static_cast<float>(g.qmax), z = static_cast<float>(g.zero);
  double e = 0;
  for (int64_t i = 0; i < k; ++i) {
    const float q = std::min(hi, std::max(lo, std::nearbyint(r[i] / a) + z));
    const float d = r[i] - a * (q - z);
    e += static_cast<double>(d) * d;
    if (codes) codes[i] = q;
  }
  return e;
}
}  // namespace

float fit_point_row(const float* r, int64_t k, const PointGrid& g, int steps, float* codes, double* err) {
  double norm = 0;
  float amax = 0;
  for (int64_t i = 0; i < k; ++i) {
    norm += static_cast<double>(r[i]) * r[i];
    amax = std::max(amax, std::fabs(r[i]));
  }
  const float top = static_cast<float>(g.qmax - g.zero);  // the largest positive level
  float best_a = 1.0f;
  double best = norm;
  if (amax > 0 && std::isfinite(amax)) {
    for (int i = 1; i <= steps; ++i) {
      const float a = static_cast<float>(i) / static_cast<float>(steps) * amax / top;
      if (!(a > 0)) continue;  // underflow on tiny rows
      const double e = point_error(r, k, g, a, nullptr);
      if (e < best) {
        best = e;
        best_a = a;
      }
    }
  }
  if (best < norm) {
    point_error(r, k, g, best_a, codes);
  } else {
    best_a = 1.0f;
    std::fill(codes, codes + k, static_cast<float>(g.zero));
  }
  *err = best;
  return best_a;
}

}  // namespace mixq::ref
