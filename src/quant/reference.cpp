#include "quant/reference.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "mixq/error.h"

// No expression here has the form a * b + c, so FMA contraction (GCC's default where the ISA has
// FMA) cannot make this code round differently from ATen's separate ops.

namespace mixq::ref {

void params_from_range(float min, float max, const QScheme& scheme, float* scale, float* zero_point) {
  MIXQ_CHECK(std::isfinite(min) && std::isfinite(max), ErrorKind::kInvalidData, "quantization range [", min,
             ", ", max, "] is not finite (NaN or infinite values in the data)");
  const float mn = std::min(min, 0.0f), mx = std::max(max, 0.0f);
  const float qmin = static_cast<float>(scheme.qmin()), qmax = static_cast<float>(scheme.qmax());
  float s = scheme.symmetric ? std::max(-mn, mx) / qmax : (mx - mn) / (qmax - qmin);
  if (!(s >= FLT_MIN)) s = 1.0f;  // zero-width (or denormal-width) range: any s represents it
  float z = 0.0f;
  if (!scheme.symmetric) z = std::min(std::max(std::nearbyint((0.0f - mn) / s), qmin), qmax);  // 0 - mn: never -0
  *scale = s;
  *zero_point = z;
}

void params_from_range(const float* min, const float* max, int64_t n, const QScheme& scheme, float* scale,
                       float* zero_point) {
  for (int64_t i = 0; i < n; ++i) params_from_range(min[i], max[i], scheme, scale + i, zero_point + i);
}

void minmax(const float* x, const std::vector<int64_t>& shape, const QScheme& scheme, float* min, float* max) {
  const QLayout L = q_layout(scheme, shape);
  std::fill(min, min + L.num_params(), INFINITY);
  std::fill(max, max + L.num_params(), -INFINITY);
  for (int64_t i = 0; i < L.numel(); ++i) {
    const int64_t j = L.param_index(i);
    min[j] = std::min(min[j], x[i]);
    max[j] = std::max(max[j], x[i]);
  }
}

float quantize_value(float x, float scale, float zero_point, const QScheme& scheme, float u) {
  float t = x / scale;
  switch (scheme.rounding) {
    case Rounding::kNearest: t = std::nearbyint(t); break;  // default FP mode: half to even
    case Rounding::kFloor: t = std::floor(t); break;
    case Rounding::kCeil: t = std::ceil(t); break;
    case Rounding::kStochastic: t = std::floor(t + u); break;
  }
  t = t + zero_point;
  return std::min(std::max(t, static_cast<float>(scheme.qmin())), static_cast<float>(scheme.qmax()));
}

void quantize(const float* x, const std::vector<int64_t>& shape, const QScheme& scheme, const float* scale,
              const float* zero_point, const float* noise, float* q) {
  const QLayout L = q_layout(scheme, shape);
  const bool stochastic = scheme.rounding == Rounding::kStochastic;
  MIXQ_CHECK(!stochastic || noise, ErrorKind::kInvalidArgument, "stochastic rounding (", scheme.str(),
             ") needs a noise array");
  for (int64_t i = 0; i < L.numel(); ++i) {
    const int64_t j = L.param_index(i);
    q[i] = quantize_value(x[i], scale[j], zero_point[j], scheme, stochastic ? noise[i] : 0.0f);
  }
}

void dequantize(const float* q, const std::vector<int64_t>& shape, const QScheme& scheme, const float* scale,
                const float* zero_point, float* x) {
  const QLayout L = q_layout(scheme, shape);
  for (int64_t i = 0; i < L.numel(); ++i) {
    const int64_t j = L.param_index(i);
    x[i] = dequantize_value(q[i], scale[j], zero_point[j]);
  }
}

void fake_quantize(const float* x, const std::vector<int64_t>& shape, const QScheme& scheme, const float* scale,
                   const float* zero_point, const float* noise, float* y) {
  quantize(x, shape, scheme, scale, zero_point, noise, y);
  dequantize(y, shape, scheme, scale, zero_point, y);
}

void params_channel_bits_minmax(const float* x, const std::vector<int64_t>& shape, const QScheme& scheme,
                                const std::vector<int>& bits, float* scale, float* zero_point) {
  const QLayout L = q_layout(scheme, shape);
  MIXQ_CHECK(scheme.granularity == Granularity::kPerChannel && int64_t(bits.size()) == L.channels,
             ErrorKind::kInvalidArgument, "per-channel bits need a per_channel scheme and one width per channel");
  std::vector<float> mn(size_t(L.channels)), mx(size_t(L.channels));
  minmax(x, shape, scheme, mn.data(), mx.data());
  for (int64_t c = 0; c < L.channels; ++c) {
    QScheme s = scheme;
    s.bits = bits[size_t(c)];
    params_from_range(mn[size_t(c)], mx[size_t(c)], s, scale + c, zero_point + c);
  }
}

void quantize_channel_bits(const float* x, const std::vector<int64_t>& shape, const QScheme& scheme,
                           const std::vector<int>& bits, const float* scale, const float* zero_point,
                           const float* noise, float* q) {
  const QLayout L = q_layout(scheme, shape);
  MIXQ_CHECK(scheme.granularity == Granularity::kPerChannel && int64_t(bits.size()) == L.channels,
             ErrorKind::kInvalidArgument, "per-channel bits need a per_channel scheme and one width per channel");
  const bool stochastic = scheme.rounding == Rounding::kStochastic;
  MIXQ_CHECK(!stochastic || noise, ErrorKind::kInvalidArgument, "stochastic rounding needs a noise array");
  for (int64_t i = 0; i < L.numel(); ++i) {
    const int64_t c = L.param_index(i);  // per-channel: the channel
    QScheme s = scheme;
    s.bits = bits[size_t(c)];
    q[i] = quantize_value(x[i], scale[c], zero_point[c], s, stochastic ? noise[i] : 0.0f);
  }
}

}  // namespace mixq::ref
