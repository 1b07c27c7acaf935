// Activation range observers, fed by executor hooks during calibration.
//
// Two passes over the calibration data: pass 1 records the running min/max, pass 2 fills a
// histogram over that fixed range (`bins` equal bins). Percentile, MSE/Lp and KL ranges are
// computed from the histogram, min-max from pass 1. Activations are quantized per tensor.
#pragma once

#include <ATen/core/Tensor.h>

#include <utility>
#include <vector>

#include "quant/quantizer.h"

namespace mixq {

// A histogram of equal bins over [min, max], as pass 2 fills it.
struct Histogram {
  std::vector<double> counts;  // [bins], exact integers up to 2^53
  float min = 0, max = 0;
  double zeros = 0;            // how many of the counts are exact zeros (ReLU outputs) ...
  int64_t zero_bin = -1;       // ... and the bin they are in (-1: none seen)
};

class ActivationObserver {
 public:
  explicit ActivationObserver(int bins = 2048);
  void observe_range(const at::Tensor& x);      // pass 1; NaN / inf values are refused (kInvalidData)
  void observe_histogram(const at::Tensor& x);  // pass 2 (after every pass-1 batch); values outside
                                                // the pass-1 range count in the edge bins
  bool needs_histogram(const RangeOptions& opts) const { return opts.method != RangeMethod::kMinMax; }
  // Per-tensor parameters (scalar scale / zero_point) for a per-tensor `scheme`. The histogram's
  // resolution is the constructor's `bins`; opts.bins is not read here.
  QParams params(const QScheme& scheme, const RangeOptions& opts) const;
  // The clipping range [lo, hi] params() quantizes (before params_from_range widens it to hold 0).
  std::pair<float, float> range(const QScheme& scheme, const RangeOptions& opts) const;
  float min() const { return min_; }
  float max() const { return max_; }
  int64_t count() const { return count_; }                // elements seen in pass 1
  int64_t histogram_count() const { return hist_count_; }  // elements seen in pass 2
  const Histogram& histogram() const { return hist_; }     // counts empty before pass 2

 private:
  at::Tensor bin_index(const at::Tensor& x) const;  // int64 bin of every element of x
  int bins_;
  float min_ = 0, max_ = 0;
  int64_t count_ = 0, hist_count_ = 0;
  Histogram hist_;
};

// Range estimators over a histogram:
//   kPercentile: the central opts.percentile % of the mass, linear inside a bin.
//   kMse: BRECQ's grid [min, max] * (1 - 0.01 i), i = 0..grid-1, minimising the Lp error of the
//         histogram's mass (each bin as 4 equally spaced points) under the scheme's rounding
//         (stochastic searches with nearest); the first candidate on ties.
//   kKl: TensorRT-style entropy calibration. Candidates shrink the widened range [min(min, 0),
//        max(max, 0)] (symmetric: [-a, a], a = max |.|) towards 0 by r = j / bins, j = bins .. 1,
//        while one quantization step is still at least one bin wide. For each: P = the counts
//        of the bins whose centre lies in the representable range [s (qmin - z), s (qmax - z)],
//        with the mass outside added to the edge bins (the clipped distribution); Q = P's bins
//        without that outside mass, merged by quantization level (the level of a bin's centre)
//        and spread evenly over the level's non-empty bins. Windows holding fewer than 2 levels
//        are skipped. Minimises KL(P || Q) after MXNet's eps = 1e-4 smoothing; the widest
//        candidate wins ties. With fewer bins than levels (e.g. 16 bits over 2048 bins) no
//        candidate exists and the range is [min, max].
//   kMinMax: [min, max].
// kMse and kKl leave the exact zeros out: 0 is exactly representable, and a ReLU output's spike
// at 0 would otherwise be smeared over a level and pull the range down (NVIDIA's calibrator sets
// bins[0] = bins[1] for the same reason).
// Returns [lo, hi] within [min(min, 0), max(max, 0)].
std::pair<float, float> histogram_range(const Histogram& hist, const QScheme& scheme, const RangeOptions& opts);

}  // namespace mixq
