// The vectorised quantizer (twin of quant/reference.cpp) and the weight range estimators.
// MSE/Lp search: BRECQ (Li et al., ICLR 2021) and its code: shrink [min, max] by (1 - 0.01 i),
// i = 0..79, keep the lowest sum |DQ(Q(w)) - w|^2.4, per channel / group.
#include "quant/quantizer.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <array>
#include <cfloat>
#include <limits>
#include <utility>
#include <vector>

#include "mixq/error.h"

namespace mixq {

namespace {

constexpr std::array<std::pair<RangeMethod, const char*>, 4> kRangeMethodNames = {{
    {RangeMethod::kMinMax, "minmax"},
    {RangeMethod::kPercentile, "percentile"},
    {RangeMethod::kMse, "mse"},
    {RangeMethod::kKl, "kl"},
}};

at::Tensor as_float(const at::Tensor& x, const char* what) {
  MIXQ_CHECK(x.defined(), ErrorKind::kInvalidArgument, what, " is missing (undefined tensor)");
  MIXQ_CHECK(at::isFloatingType(x.scalar_type()), ErrorKind::kInvalidArgument, what,
             " must be a floating-point tensor, got ", x.scalar_type());
  return x.to(at::kFloat);
}

std::vector<int64_t> dims(const at::Tensor& t) { return t.sizes().vec(); }

// A parameter tensor checked against the layout and flattened to [num_params] in QParams order.
at::Tensor flat_param(const at::Tensor& p, const char* what, const QScheme& scheme, const QLayout& L) {
  at::Tensor f = as_float(p, what);
  MIXQ_CHECK(f.numel() == L.num_params(), ErrorKind::kInvalidArgument, what, " has ", f.numel(),
             " values but '", scheme.str(), "' needs ", L.num_params(), " (", L.channels, " channels x ",
             L.groups, " groups)");
  return f.reshape({-1});
}

// The 2-D view W2 [C, K] of qscheme.h (per-tensor: [1, numel]).
at::Tensor view_2d(const at::Tensor& w, const QScheme& scheme, const QLayout& L) {
  if (scheme.granularity == Granularity::kPerTensor) return w.reshape({1, L.k});
  int64_t axis = scheme.axis < 0 ? scheme.axis + w.dim() : scheme.axis;
  return w.movedim(axis, 0).reshape({L.channels, L.k});
}

// Reduces every group of W2 [C, K] to one value: [C, G]. `f` maps [R, n] to [R]. Full groups are
// reduced in one call; the shorter last group, if any, in a second.
template <typename F>
at::Tensor group_reduce(const at::Tensor& w2, const QLayout& L, F f) {
  const int64_t full = L.k / L.group_size, rem = L.k % L.group_size;
  std::vector<at::Tensor> parts;
  if (full > 0)
    parts.push_back(f(w2.narrow(1, 0, full * L.group_size).reshape({L.channels * full, L.group_size}))
                        .reshape({L.channels, full}));
  if (rem > 0) parts.push_back(f(w2.narrow(1, full * L.group_size, rem)).reshape({L.channels, 1}));
  return parts.size() == 1 ? parts[0] : at::cat(parts, 1);
}

// [C, G] -> [C, K]: every element of W2 gets its group's value.
at::Tensor expand_groups(const at::Tensor& p, const QLayout& L) {
  if (L.groups == 1) return p.reshape({L.channels, 1});
  at::Tensor idx = at::arange(L.k, at::kLong).div(L.group_size, "floor");
  return p.reshape({L.channels, L.groups}).index_select(1, idx);
}

// Linear-interpolated quantile q of every row of t [R, n]: [R]. (at::quantile refuses more than
// 2^24 elements, which a large per-tensor weight exceeds.)
at::Tensor row_quantile(const at::Tensor& t, double q) {
  at::Tensor sorted = std::get<0>(t.sort(1));
  const int64_t n = t.size(1);
  const double pos = q * static_cast<double>(n - 1);
  const int64_t i0 = std::min<int64_t>(static_cast<int64_t>(pos), n - 1), i1 = std::min<int64_t>(i0 + 1, n - 1);
  at::Tensor a = sorted.select(1, i0), b = sorted.select(1, i1);
  return a + (b - a) * (pos - static_cast<double>(i0));
}

// The elementwise core, in the operation order of ref::quantize_value / dequantize_value.
at::Tensor quantize_core(const at::Tensor& x, const at::Tensor& s, const at::Tensor& z, const QScheme& scheme,
                         const at::Tensor& noise) {
  at::Tensor t = at::div(x, s);
  switch (scheme.rounding) {
    case Rounding::kNearest: t.round_(); break;  // half to even
    case Rounding::kFloor: t.floor_(); break;
    case Rounding::kCeil: t.ceil_(); break;
    case Rounding::kStochastic: t.add_(noise).floor_(); break;
  }
  t.add_(z);
  return t.clamp_(static_cast<double>(scheme.qmin()), static_cast<double>(scheme.qmax()));
}
at::Tensor dequantize_core(const at::Tensor& q, const at::Tensor& s, const at::Tensor& z) {
  return at::mul(s, at::sub(q, z));
}

// Min-max of every group: [C, G] each.
std::pair<at::Tensor, at::Tensor> group_minmax(const at::Tensor& w2, const QLayout& L) {
  return {group_reduce(w2, L, [](const at::Tensor& t) { return t.amin(1); }),
          group_reduce(w2, L, [](const at::Tensor& t) { return t.amax(1); })};
}

// BRECQ's grid search, all groups at once; returns the chosen [C, G] ranges.
std::pair<at::Tensor, at::Tensor> mse_search(const at::Tensor& w2, const QLayout& L, const QScheme& scheme,
                                             const RangeOptions& opts) {
  MIXQ_CHECK(opts.grid >= 1 && opts.grid <= 100, ErrorKind::kInvalidArgument, "MSE range search: grid ", opts.grid,
             " must be in 1..100 (candidates shrink the range by 1% each)");
  MIXQ_CHECK(opts.lp > 0, ErrorKind::kInvalidArgument, "MSE range search: p = ", opts.lp, " must be > 0");
  QScheme search = scheme;
  if (search.rounding == Rounding::kStochastic) search.rounding = Rounding::kNearest;
  auto [mn0, mx0] = group_minmax(w2, L);
  at::Tensor best_err = at::full({L.channels, L.groups}, std::numeric_limits<double>::infinity(), at::kDouble);
  at::Tensor best_mn = mn0.clone(), best_mx = mx0.clone();
  for (int i = 0; i < opts.grid; ++i) {
    const double f = 1.0 - 0.01 * i;
    at::Tensor mn = mn0 * f, mx = mx0 * f;
    QParams p = params_from_range(mn, mx, search);
    at::Tensor s = expand_groups(p.scale, L), z = expand_groups(p.zero_point, L);
    at::Tensor d = dequantize_core(quantize_core(w2, s, z, search, {}), s, z).sub_(w2);
    // |d|^p in float (vectorised; double pow costs ~5x), summed in double.
    at::Tensor err = group_reduce(d.abs_().pow_(opts.lp), L,
                                  [](const at::Tensor& t) { return t.sum(1, false, at::kDouble); });
    at::Tensor better = err < best_err;
    best_err = at::where(better, err, best_err);
    best_mn = at::where(better, mn, best_mn);
    best_mx = at::where(better, mx, best_mx);
  }
  return {best_mn, best_mx};
}

}  // namespace

const char* range_method_name(RangeMethod m) {
  for (const auto& [v, n] : kRangeMethodNames)
    if (v == m) return n;
  MIXQ_ASSERT(false, "range method ", static_cast<int>(m), " missing from its name table");
  return "";
}

RangeMethod parse_range_method(const std::string& s) {
  for (const auto& [v, n] : kRangeMethodNames)
    if (s == n) return v;
  throw Error(ErrorKind::kInvalidArgument,
              "unknown range method '" + s + "'; use one of: minmax, percentile, mse, kl");
}

QParams params_from_range(const at::Tensor& min, const at::Tensor& max, const QScheme& scheme) {
  MIXQ_CHECK(scheme.bits >= 2 && scheme.bits <= 16, ErrorKind::kInvalidArgument, "quantization scheme '",
             scheme.str(), "': ", scheme.bits, " bits is not supported; use 2..8 or 16");
  at::Tensor mn = as_float(min, "range min").clamp_max(0), mx = as_float(max, "range max").clamp_min(0);
  MIXQ_CHECK(mn.sizes() == mx.sizes(), ErrorKind::kInvalidArgument, "range min ", mn.sizes(), " and max ",
             mx.sizes(), " differ in shape");
  MIXQ_CHECK(at::isfinite(mn).all().item<bool>() && at::isfinite(mx).all().item<bool>(), ErrorKind::kInvalidData,
             "quantization range [", mn.min().item<float>(), ", ", mx.max().item<float>(),
             "] is not finite (NaN or infinite values in the data)");
  const float qmin = static_cast<float>(scheme.qmin()), qmax = static_cast<float>(scheme.qmax());
  // Float32 scalars wrapped as 0-d tensors: the same divisions the reference does.
  auto scalar = [](float v) { return at::scalar_tensor(v, at::kFloat); };
  at::Tensor s = scheme.symmetric ? at::div(at::maximum(mn.neg(), mx), scalar(qmax))
                                  : at::div(at::sub(mx, mn), scalar(qmax - qmin));
  s.masked_fill_(s < FLT_MIN, 1.0);  // zero-width range
  QParams p;
  p.zero_point = scheme.symmetric ? at::zeros_like(s)
                                  : at::div(at::sub(scalar(0.0f), mn), s).round_().clamp_(qmin, qmax);
  p.scale = s.contiguous();
  p.zero_point = p.zero_point.contiguous();
  return p;
}

void weight_minmax(const at::Tensor& w, const QScheme& scheme, at::Tensor& min, at::Tensor& max) {
  at::Tensor w32 = as_float(w, "weight");
  MIXQ_CHECK(w32.numel() > 0, ErrorKind::kInvalidArgument, "cannot take the range of an empty tensor ", w32.sizes());
  const QLayout L = q_layout(scheme, dims(w32));
  auto [mn, mx] = group_minmax(view_2d(w32, scheme, L), L);
  const auto shape = param_shape(scheme, dims(w32));
  min = mn.reshape(shape).contiguous();
  max = mx.reshape(shape).contiguous();
}

void weight_range(const at::Tensor& w, const QScheme& scheme, const RangeOptions& opts, at::Tensor& min,
                  at::Tensor& max) {
  MIXQ_CHECK(opts.method != RangeMethod::kKl, ErrorKind::kInvalidArgument,
             "the KL range estimator is for activations; use minmax, percentile or mse for weights");
  at::Tensor w32 = as_float(w, "weight");
  MIXQ_CHECK(w32.numel() > 0, ErrorKind::kInvalidArgument, "cannot quantize an empty weight ", w32.sizes());
  const QLayout L = q_layout(scheme, dims(w32));
  at::Tensor w2 = view_2d(w32, scheme, L);
  at::Tensor mn, mx;
  switch (opts.method) {
    case RangeMethod::kMinMax:
      std::tie(mn, mx) = group_minmax(w2, L);
      break;
    case RangeMethod::kPercentile: {
      MIXQ_CHECK(opts.percentile > 0 && opts.percentile <= 100, ErrorKind::kInvalidArgument, "percentile ",
                 opts.percentile, " must be in (0, 100]");
      const double tail = (100.0 - opts.percentile) / 200.0;
      mn = group_reduce(w2, L, [&](const at::Tensor& t) { return row_quantile(t, tail); });
      mx = group_reduce(w2, L, [&](const at::Tensor& t) { return row_quantile(t, 1.0 - tail); });
      break;
    }
    case RangeMethod::kMse:
      std::tie(mn, mx) = mse_search(w2, L, scheme, opts);
      break;
    case RangeMethod::kKl:
      break;
  }
  const auto shape = param_shape(scheme, dims(w32));
  min = mn.reshape(shape).contiguous();
  max = mx.reshape(shape).contiguous();
}

QParams weight_params(const at::Tensor& w, const QScheme& scheme, const RangeOptions& opts) {
  at::Tensor mn, mx;
  weight_range(w, scheme, opts, mn, mx);
  return params_from_range(mn, mx, scheme);
}

at::Tensor broadcast_param(const at::Tensor& param, const QScheme& scheme, at::IntArrayRef shape) {
  const QLayout L = q_layout(scheme, shape.vec());
  at::Tensor f = flat_param(param, "quantization parameter", scheme, L);
  switch (scheme.granularity) {
    case Granularity::kPerTensor:
      return f.reshape({});
    case Granularity::kPerChannel:
      return f.reshape(param_shape(scheme, shape.vec()));
    case Granularity::kPerGroup: {
      // Element (o, c, n) of the [outer, C, inner] view reads (c, (o * inner + n) / group_size).
      at::Tensor o = at::arange(L.outer, at::kLong).view({L.outer, 1, 1});
      at::Tensor c = at::arange(L.channels, at::kLong).view({1, L.channels, 1});
      at::Tensor n = at::arange(L.inner, at::kLong).view({1, 1, L.inner});
      at::Tensor idx = c * L.groups + (o * L.inner + n).div(L.group_size, "floor");
      return f.index_select(0, idx.reshape({-1})).reshape(shape);
    }
  }
  MIXQ_ASSERT(false, "unknown granularity");
  return {};
}

at::Tensor quantize(const at::Tensor& x, const QParams& p, const QScheme& scheme, const at::Tensor& noise) {
  at::Tensor x32 = as_float(x, "tensor to quantize");
  at::Tensor u;
  if (scheme.rounding == Rounding::kStochastic) {
    u = as_float(noise, "stochastic-rounding noise");
    MIXQ_CHECK(u.sizes() == x32.sizes(), ErrorKind::kInvalidArgument, "stochastic-rounding noise has shape ",
               u.sizes(), " but the tensor has ", x32.sizes());
  }
  at::Tensor s = broadcast_param(p.scale, scheme, x32.sizes());
  at::Tensor z = broadcast_param(p.zero_point, scheme, x32.sizes());
  return quantize_core(x32, s, z, scheme, u).contiguous();
}

at::Tensor dequantize(const at::Tensor& q, const QParams& p, const QScheme& scheme) {
  // Codes may be held compact (qmodel.h compact_codes): integer dtypes convert exactly.
  at::Tensor q32 = q.defined() && at::isIntegralType(q.scalar_type(), false) ? q.to(at::kFloat) : as_float(q, "codes");
  at::Tensor s = broadcast_param(p.scale, scheme, q32.sizes());
  at::Tensor z = broadcast_param(p.zero_point, scheme, q32.sizes());
  return dequantize_core(q32, s, z).contiguous();
}

at::Tensor fake_quantize(const at::Tensor& x, const QParams& p, const QScheme& scheme, const at::Tensor& noise) {
  return dequantize(quantize(x, p, scheme, noise), p, scheme);
}

double roundtrip_mse(const at::Tensor& x, const QScheme& scheme) {
  at::Tensor x32 = as_float(x, "tensor");
  QParams p = weight_params(x32, scheme, RangeOptions{});
  at::Tensor noise;
  if (scheme.rounding == Rounding::kStochastic) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
    noise = at::rand(x32.sizes(), gen, at::kFloat);
  }
  at::Tensor d = fake_quantize(x32, p, scheme, noise).sub_(x32).to(at::kDouble);
  return d.mul(d).mean().item<double>();
}

}  // namespace mixq
