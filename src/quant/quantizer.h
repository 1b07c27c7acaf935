// Quantizer math: parameters from ranges, weight range estimation, and the fast (libtorch,
// vectorised) quantize / dequantize / fake-quantize. Every function here has a scalar twin in
// quant/reference.h that the tests compare against on odd sizes; the two agree bit for bit.
//
// Tensors may be any floating dtype and any strides; the math runs in float32 and results are
// contiguous float32. QParams arguments are read in QParams order (quant/scheme.h); any tensor
// shape with the right number of elements is accepted.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "quant/scheme.h"

namespace mixq {

enum class RangeMethod { kMinMax, kPercentile, kMse, kKl };
const char* range_method_name(RangeMethod m);           // "minmax", "percentile", "mse", "kl"
RangeMethod parse_range_method(const std::string& s);   // throws kInvalidArgument

struct RangeOptions {
  RangeMethod method = RangeMethod::kMinMax;
  double percentile = 99.99;  // kPercentile: keep this central percentage of values, (0, 100]
  double lp = 2.4;            // kMse: the p of the Lp error (BRECQ uses 2.4), > 0
  int grid = 80;              // kMse: candidates [min, max] * (1 - 0.01 i), i = 0..grid-1 (1..100)
  int bins = 2048;            // kKl and histogram-based activation estimators
};

// Scale / zero point from a range. `min`/`max` are shaped like QParams (see scheme.h); the result
// has their shape. The range is widened to include 0 (so 0 is exactly representable); a
// zero-width range gets scale 1. Symmetric: s = max(|min|, |max|) / qmax, z = 0. Asymmetric:
// s = (max - min) / (qmax - qmin), z = clamp(round(-min / s), qmin, qmax). Non-finite ranges are
// refused (kInvalidData).
QParams params_from_range(const at::Tensor& min, const at::Tensor& max, const QScheme& scheme);

// Per-tensor / per-channel / per-group min and max of `w` under `scheme`, shaped like QParams.
// `w` must not be empty.
void weight_minmax(const at::Tensor& w, const QScheme& scheme, at::Tensor& min, at::Tensor& max);

// Weight quantization parameters with the chosen range estimator, each channel / group on its
// own: minmax; percentile (the central opts.percentile % of the group's values, linear
// interpolation between order statistics); MSE/Lp (BRECQ): candidates [min, max] * (1 - 0.01 i),
// i = 0..grid-1, keep the i with the lowest sum |DQ(Q(w)) - w|^lp (|d|^lp in float, summed in
// double), the first on ties, so never worse than min-max (i = 0) up to that float rounding. The search rounds like the scheme, except stochastic, which searches with
// nearest. kKl is for activations and is refused for weights (kInvalidArgument).
QParams weight_params(const at::Tensor& w, const QScheme& scheme, const RangeOptions& opts);
// The clipping range weight_params quantizes, shaped like QParams (before params_from_range widens
// it to hold 0): what LAPQ scales in its joint search.
void weight_range(const at::Tensor& w, const QScheme& scheme, const RangeOptions& opts, at::Tensor& min,
                  at::Tensor& max);

// Integer codes (float32 tensor holding integers in [qmin, qmax]), shaped like x.
// `noise`: U[0,1) values shaped like x, required for Rounding::kStochastic (ignored otherwise).
at::Tensor quantize(const at::Tensor& x, const QParams& p, const QScheme& scheme,
                    const at::Tensor& noise = at::Tensor());
at::Tensor dequantize(const at::Tensor& q, const QParams& p, const QScheme& scheme);
at::Tensor fake_quantize(const at::Tensor& x, const QParams& p, const QScheme& scheme,
                         const at::Tensor& noise = at::Tensor());

// Scale / zero point expanded to broadcast against a tensor of `shape`: per-tensor [], per-channel
// as stored, per-group gathered to `shape` itself (one value per element).
at::Tensor broadcast_param(const at::Tensor& param, const QScheme& scheme, at::IntArrayRef shape);

// Mean squared roundtrip error MSE(x, DQ(Q(x))) with min-max parameters (MixQuant's signal).
// Stochastic rounding draws its noise from a generator seeded with 0, so the value is
// reproducible.
double roundtrip_mse(const at::Tensor& x, const QScheme& scheme);

}  // namespace mixq
