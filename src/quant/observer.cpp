// Activation observers and the histogram range estimators. KL: TensorRT's entropy calibration
// (Migacz, "8-bit Inference with TensorRT", GTC 2017), generalised from |x| with 128 levels to
// any zero point and 2^b levels; smoothing as MXNet's _smooth_distribution; exact zeros left out
// as in NVIDIA's pytorch-quantization (bins[0] = bins[1]). MSE: BRECQ's grid on the histogram.
#include "quant/observer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "mixq/error.h"
#include "quant/reference.h"

namespace mixq {

namespace {

// Value below which a fraction `target` of the histogram's mass lies (linear inside a bin).
float histogram_quantile(const std::vector<double>& hist, float min, double width, double target) {
  double cum = 0;
  for (size_t k = 0; k < hist.size(); ++k) {
    if (hist[k] > 0 && cum + hist[k] >= target)
      return static_cast<float>(min + (static_cast<double>(k) + (target - cum) / hist[k]) * width);
    cum += hist[k];
  }
  return static_cast<float>(min + static_cast<double>(hist.size()) * width);
}

std::pair<float, float> percentile_range(const std::vector<double>& hist, float min, float max, double width,
                                         const RangeOptions& opts) {
  MIXQ_CHECK(opts.percentile > 0 && opts.percentile <= 100, ErrorKind::kInvalidArgument, "percentile ",
             opts.percentile, " must be in (0, 100]");
  double total = 0;
  for (double h : hist) total += h;
  const double tail = (100.0 - opts.percentile) / 200.0;
  float lo = histogram_quantile(hist, min, width, tail * total);
  float hi = histogram_quantile(hist, min, width, (1.0 - tail) * total);
  return {std::clamp(lo, min, max), std::clamp(hi, min, max)};
}

// BRECQ's grid over the histogram's mass, each bin as kPoints equally spaced points.
std::pair<float, float> mse_range(const std::vector<double>& hist, float min, float max, double width,
                                  const QScheme& scheme, const RangeOptions& opts) {
  MIXQ_CHECK(opts.grid >= 1 && opts.grid <= 100, ErrorKind::kInvalidArgument, "MSE range search: grid ", opts.grid,
             " must be in 1..100 (candidates shrink the range by 1% each)");
  MIXQ_CHECK(opts.lp > 0, ErrorKind::kInvalidArgument, "MSE range search: p = ", opts.lp, " must be > 0");
  constexpr int kPoints = 4;
  std::vector<float> value;
  std::vector<double> mass;
  for (size_t k = 0; k < hist.size(); ++k) {
    if (hist[k] <= 0) continue;
    for (int j = 0; j < kPoints; ++j) {
      value.push_back(static_cast<float>(min + (static_cast<double>(k) + (j + 0.5) / kPoints) * width));
      mass.push_back(hist[k] / kPoints);
    }
  }
  QScheme search = scheme;
  if (search.rounding == Rounding::kStochastic) search.rounding = Rounding::kNearest;
  std::pair<float, float> best{min, max};
  double best_err = std::numeric_limits<double>::infinity();
  for (int i = 0; i < opts.grid; ++i) {
    const float f = static_cast<float>(1.0 - 0.01 * i);
    const float lo = min * f, hi = max * f;
    float s, z;
    ref::params_from_range(lo, hi, search, &s, &z);
    double err = 0;
    for (size_t n = 0; n < value.size(); ++n) {
      float y = ref::dequantize_value(ref::quantize_value(value[n], s, z, search), s, z);
      err += mass[n] * std::pow(std::fabs(static_cast<double>(y) - value[n]), opts.lp);
    }
    if (err < best_err) {
      best_err = err;
      best = {lo, hi};
    }
  }
  return best;
}

// MXNet's _smooth_distribution: zero entries get eps, the others give up the same total. The
// floor at half an entry keeps a tiny (fractional) Q entry positive.
void smooth(std::vector<double>& p) {
  constexpr double kEps = 1e-4;
  size_t zeros = 0;
  for (double v : p) zeros += v == 0;
  if (zeros == 0 || zeros == p.size()) return;
  const double eps1 = kEps * static_cast<double>(zeros) / static_cast<double>(p.size() - zeros);
  for (double& v : p) v = v == 0 ? kEps : std::max(v - eps1, 0.5 * v);
}

double kl_divergence(const std::vector<double>& p, const std::vector<double>& q) {
  double sp = 0, sq = 0;
  for (size_t i = 0; i < p.size(); ++i) sp += p[i], sq += q[i];
  double kl = 0;
  for (size_t i = 0; i < p.size(); ++i)
    if (p[i] > 0) kl += p[i] / sp * std::log((p[i] / sp) / (q[i] / sq));
  return kl;
}

std::pair<float, float> kl_range(const std::vector<double>& hist, float min, float max, double width,
                                 const QScheme& scheme) {
  const int64_t bins = static_cast<int64_t>(hist.size());
  QScheme qs = scheme;
  qs.rounding = Rounding::kNearest;
  // The entropy threshold is searched with an 8-bit grid even for fewer bits, as TensorRT's and
  // ONNX Runtime's calibrators do (128/256 levels whatever the target): with 2^b < 256 levels the
  // KL criterion favours absurdly tight clipping (measured: 4-bit activations of the ResNet
  // fixture fell to 22% top-1). The b-bit grid is then laid over the chosen range.
  qs.bits = std::max(qs.bits, 8);
  float lo0 = std::min(min, 0.0f), hi0 = std::max(max, 0.0f);
  if (scheme.symmetric) hi0 = std::max(-lo0, hi0), lo0 = -hi0;
  std::vector<float> centre(hist.size());
  for (int64_t k = 0; k < bins; ++k) centre[k] = static_cast<float>(min + (k + 0.5) * width);

  std::pair<float, float> best{min, max};
  double best_kl = std::numeric_limits<double>::infinity();
  std::vector<double> p, q;
  for (int64_t j = bins; j >= 1; --j) {
    const float r = static_cast<float>(static_cast<double>(j) / static_cast<double>(bins));
    const float lo = lo0 * r, hi = hi0 * r;
    float s, z;
    ref::params_from_range(lo, hi, qs, &s, &z);
    if (s < width) break;  // a quantization step narrower than a bin: the histogram cannot tell
    const float rep_lo = s * (static_cast<float>(qs.qmin()) - z), rep_hi = s * (static_cast<float>(qs.qmax()) - z);
    int64_t kb = 0, ke = bins - 1;
    while (kb < bins && centre[kb] < rep_lo) ++kb;
    while (ke >= 0 && centre[ke] > rep_hi) --ke;
    if (kb > ke) continue;
    const size_t n = static_cast<size_t>(ke - kb + 1);
    p.assign(hist.begin() + kb, hist.begin() + ke + 1);
    for (int64_t k = 0; k < kb; ++k) p.front() += hist[k];
    for (int64_t k = ke + 1; k < bins; ++k) p.back() += hist[k];
    // Levels are non-decreasing in k, so each level is a run of bins.
    q.assign(n, 0.0);
    int levels = 0;
    for (size_t a = 0; a < n; ++levels) {
      const float level = ref::quantize_value(centre[kb + a], s, z, qs);
      size_t b = a;
      double total = 0, nonzero = 0;
      for (; b < n && ref::quantize_value(centre[kb + b], s, z, qs) == level; ++b) {
        total += hist[kb + b];
        nonzero += p[b] != 0;
      }
      for (size_t i = a; i < b; ++i) q[i] = p[i] != 0 ? total / nonzero : 0.0;
      a = b;
    }
    if (levels < 2) continue;  // one level: P and Q normalise to the same thing, KL = 0
    smooth(p);
    smooth(q);
    const double kl = kl_divergence(p, q);
    if (kl < best_kl) {
      best_kl = kl;
      best = {lo, hi};
    }
  }
  return best;
}

}  // namespace

std::pair<float, float> histogram_range(const Histogram& h, const QScheme& scheme, const RangeOptions& opts) {
  const float min = h.min, max = h.max;
  MIXQ_ASSERT(!h.counts.empty() && min <= max, "histogram_range needs a non-empty histogram over [min, max]");
  const double width = (static_cast<double>(max) - min) / static_cast<double>(h.counts.size());
  if (opts.method == RangeMethod::kMinMax || !(width > 0)) return {min, max};
  if (opts.method == RangeMethod::kPercentile) return percentile_range(h.counts, min, max, width, opts);
  std::vector<double> nonzero = h.counts;
  if (h.zero_bin >= 0) nonzero[static_cast<size_t>(h.zero_bin)] -= h.zeros;
  double total = 0;
  for (double c : nonzero) total += c;
  if (!(total > 0)) return {min, max};  // nothing but zeros: any range is exact
  if (opts.method == RangeMethod::kMse) return mse_range(nonzero, min, max, width, scheme, opts);
  return kl_range(nonzero, min, max, width, scheme);
}

ActivationObserver::ActivationObserver(int bins) : bins_(bins) {
  MIXQ_CHECK(bins >= 1, ErrorKind::kInvalidArgument, "histogram bins ", bins, " must be >= 1");
}

void ActivationObserver::observe_range(const at::Tensor& x) {
  MIXQ_ASSERT(hist_.counts.empty(), "observe_range after observe_histogram: the histogram range is already fixed");
  if (x.numel() == 0) return;
  at::Tensor x32 = x.detach().to(at::kFloat);
  auto [mn_t, mx_t] = at::aminmax(x32);
  const float mn = mn_t.item<float>(), mx = mx_t.item<float>();
  MIXQ_CHECK(std::isfinite(mn) && std::isfinite(mx), ErrorKind::kInvalidData, "activation of shape ", x.sizes(),
             " contains NaN or infinite values (range [", mn, ", ", mx, "]); it cannot be quantized");
  min_ = count_ == 0 ? mn : std::min(min_, mn);
  max_ = count_ == 0 ? mx : std::max(max_, mx);
  count_ += x.numel();
}

at::Tensor ActivationObserver::bin_index(const at::Tensor& x) const {
  if (!(max_ > min_)) return at::zeros(x.sizes(), at::kLong);
  return (x - min_).mul_(static_cast<double>(bins_) / (static_cast<double>(max_) - min_))
      .floor_()
      .clamp_(0, bins_ - 1)
      .to(at::kLong);
}

void ActivationObserver::observe_histogram(const at::Tensor& x) {
  MIXQ_ASSERT(count_ > 0, "observe_histogram before any observe_range (pass 1 fixes the histogram's range)");
  if (hist_.counts.empty()) {
    hist_.counts.assign(static_cast<size_t>(bins_), 0.0);
    hist_.min = min_;
    hist_.max = max_;
  }
  if (x.numel() == 0) return;
  hist_count_ += x.numel();
  at::Tensor x32 = x.detach().to(at::kFloat).reshape({-1});
  at::Tensor counts = at::bincount(bin_index(x32), {}, bins_);
  const int64_t* c = counts.data_ptr<int64_t>();
  for (int i = 0; i < bins_; ++i) hist_.counts[static_cast<size_t>(i)] += static_cast<double>(c[i]);
  const int64_t zeros = (x32 == 0).sum().item<int64_t>();
  if (zeros > 0) {
    // The same arithmetic as the batch, so the zeros are found in the bin that counted them.
    if (hist_.zero_bin < 0) hist_.zero_bin = bin_index(at::zeros({1})).item<int64_t>();
    hist_.zeros += static_cast<double>(zeros);
  }
}

std::pair<float, float> ActivationObserver::range(const QScheme& scheme, const RangeOptions& opts) const {
  MIXQ_CHECK(count_ > 0, ErrorKind::kInvalidData,
             "the activation observer saw no data; run calibration batches through it first");
  if (opts.method == RangeMethod::kMinMax) return {min_, max_};
  MIXQ_CHECK(!hist_.counts.empty(), ErrorKind::kInvalidArgument, "the ", range_method_name(opts.method),
             " range needs the histogram pass (observe_histogram) after the min/max pass");
  return histogram_range(hist_, scheme, opts);
}

QParams ActivationObserver::params(const QScheme& scheme, const RangeOptions& opts) const {
  MIXQ_CHECK(scheme.granularity == Granularity::kPerTensor, ErrorKind::kInvalidArgument, "activation scheme '",
             scheme.str(), "': activations are quantized per tensor");
  auto [lo, hi] = range(scheme, opts);
  return params_from_range(at::scalar_tensor(lo, at::kFloat), at::scalar_tensor(hi, at::kFloat), scheme);
}

}  // namespace mixq
