#include "quant/rowwise_ref.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace mixq::ref {

float round_fp16(float x) {
  if (std::isnan(x)) return x;
  const float a = std::fabs(x);
  // 65520 and above round to infinity in fp16: saturate instead (a stored parameter stays finite).
  if (a >= 65520.0f) return std::copysign(65504.0f, x);
  // Below fp16's smallest normal (2^-14) the grid is uniform with step 2^-24; scaling by a power
  // of two is exact, so nearbyint rounds half to even on that grid.
  if (a < 6.103515625e-05f) return std::copysign(std::nearbyint(a * 16777216.0f) / 16777216.0f, x);
  // Normal range: keep 10 of float32's 23 mantissa bits, rounding half to even on the bits dropped.
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  u += 0x0FFFu + ((u >> 13) & 1u);
  u &= ~0x1FFFu;
  float y;
  std::memcpy(&y, &u, sizeof y);
  return y;
}

uint16_t fp16_bits(float x) {
  x = round_fp16(x);
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const float a = std::fabs(x);
  if (std::isnan(x)) return static_cast<uint16_t>(sign | 0x7e00u);
  if (a < 6.103515625e-05f)  // subnormal (or zero): multiples of 2^-24
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(a * 16777216.0f));
  const int32_t e = static_cast<int32_t>((u >> 23) & 0xffu) - 127 + 15;
  return static_cast<uint16_t>(sign | (e << 10) | ((u >> 13) & 0x3ffu));
}

float fp16_value(uint16_t h) {
  const uint32_t sign = (uint32_t(h) & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  float y;
  if (e == 0) {
    y = static_cast<float>(m) / 16777216.0f;  // subnormal: m x 2^-24
    return sign ? -y : y;
  }
  const uint32_t u = e == 31 ? (sign | 0x7f800000u | (m << 13)) : (sign | ((e - 15 + 127) << 23) | (m << 13));
  std::memcpy(&y, &u, sizeof y);
  return y;
}

namespace {

// fp16 parameters of the range [lo, hi].
RowParams params_of(float lo, float hi, int bits) {
  RowParams p;
  p.scale = round_fp16((hi - lo) / static_cast<float>(rowwise_qmax(bits)));
  p.offset = round_fp16(lo);
  return p;
}

}  // namespace

RowParams rowwise_minmax(const float* row, int64_t dim, int bits) {
  const auto [lo, hi] = std::minmax_element(row, row + dim);
  return params_of(*lo, *hi, bits);
}

float rowwise_quantize_value(float x, RowParams p, int bits) {
  if (!(p.scale > 0)) return 0.0f;
  const float t = std::nearbyint((x - p.offset) / p.scale);
  return std::min(std::max(t, 0.0f), static_cast<float>(rowwise_qmax(bits)));
}

void rowwise_quantize_row(const float* row, int64_t dim, int bits, RowParams p, float* q) {
  for (int64_t i = 0; i < dim; ++i) q[i] = rowwise_quantize_value(row[i], p, bits);
}

double rowwise_sq_error(const float* row, int64_t dim, int bits, RowParams p) {
  double e = 0;
  for (int64_t i = 0; i < dim; ++i) {
    const double d = double(rowwise_dequantize_value(rowwise_quantize_value(row[i], p, bits), p)) - double(row[i]);
    e += d * d;
  }
  return e;
}

RowParams rowwise_greedy(const float* row, int64_t dim, int bits, int bins, double max_shrink) {
  const auto [plo, phi] = std::minmax_element(row, row + dim);
  const float lo0 = *plo, hi0 = *phi;
  RowParams best = params_of(lo0, hi0, bits);
  double best_err = rowwise_sq_error(row, dim, bits, best);
  const double step = (double(hi0) - double(lo0)) / bins;
  if (!(step > 0)) return best;
  // Bins may be removed until the range is (1 - max_shrink) of the full one.
  const int moves = static_cast<int>(std::floor(bins * max_shrink + 1e-9));
  int lo_bins = 0, hi_bins = 0;
  for (int m = 0; m < moves; ++m) {
    const float lo_up = static_cast<float>(lo0 + step * (lo_bins + 1)), lo = static_cast<float>(lo0 + step * lo_bins);
    const float hi_down = static_cast<float>(hi0 - step * (hi_bins + 1)), hi = static_cast<float>(hi0 - step * hi_bins);
    const RowParams a = params_of(lo_up, hi, bits), b = params_of(lo, hi_down, bits);
    const double ea = rowwise_sq_error(row, dim, bits, a), eb = rowwise_sq_error(row, dim, bits, b);
    // The better move is taken even when it is worse than the current range: a later move may
    // recover (FBGEMM's search walks the whole allowed shrink and keeps the best seen).
    if (ea < eb) ++lo_bins; else ++hi_bins;
    const double e = ea < eb ? ea : eb;
    if (e < best_err) {
      best_err = e;
      best = ea < eb ? a : b;
    }
  }
  return best;
}

void codebook_row(const float* row, int64_t dim, int bits, float* centroids, float* q, int iters) {
  const int k = 1 << bits;
  const auto [plo, phi] = std::minmax_element(row, row + dim);
  const double lo = *plo, hi = *phi;
  std::vector<double> c(static_cast<size_t>(k));
  for (int j = 0; j < k; ++j) c[static_cast<size_t>(j)] = k == 1 ? lo : lo + (hi - lo) * j / (k - 1);
  std::vector<int> assign(static_cast<size_t>(dim), -1);
  std::vector<double> sum(static_cast<size_t>(k));
  std::vector<int64_t> count(static_cast<size_t>(k));
  auto nearest = [&](float x, const auto& cs) {
    int bj = 0;
    double bd = std::fabs(double(x) - double(cs[0]));
    for (int j = 1; j < k; ++j) {
      const double d = std::fabs(double(x) - double(cs[static_cast<size_t>(j)]));
      if (d < bd) { bd = d; bj = j; }
    }
    return bj;
  };
  for (int it = 0; it < iters; ++it) {
    bool changed = false;
    for (int64_t i = 0; i < dim; ++i) {
      const int j = nearest(row[i], c);
      changed = changed || j != assign[static_cast<size_t>(i)];
      assign[static_cast<size_t>(i)] = j;
    }
    if (!changed) break;
    std::fill(sum.begin(), sum.end(), 0.0);
    std::fill(count.begin(), count.end(), 0);
    for (int64_t i = 0; i < dim; ++i) {
      sum[static_cast<size_t>(assign[static_cast<size_t>(i)])] += row[i];
      ++count[static_cast<size_t>(assign[static_cast<size_t>(i)])];
    }
    for (int j = 0; j < k; ++j)
      if (count[static_cast<size_t>(j)]) c[static_cast<size_t>(j)] = sum[static_cast<size_t>(j)] / count[static_cast<size_t>(j)];
  }
  // Stored as fp16; the final codes pick the nearest stored centroid (rounding can move a value's
  // nearest centroid), so the codes are optimal for what is stored.
  for (int j = 0; j < k; ++j) centroids[j] = round_fp16(static_cast<float>(c[static_cast<size_t>(j)]));
  std::vector<float> stored(centroids, centroids + k);
  for (int64_t i = 0; i < dim; ++i) q[i] = static_cast<float>(nearest(row[i], stored));
}

double codebook_sq_error(const float* row, int64_t dim, const float* centroids, const float* q) {
  double e = 0;
  for (int64_t i = 0; i < dim; ++i) {
    const double d = double(centroids[static_cast<int64_t>(q[i])]) - double(row[i]);
    e += d * d;
  }
  return e;
}

}  // namespace mixq::ref
