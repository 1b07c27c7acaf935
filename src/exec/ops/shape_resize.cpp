// Resize (opset 10-18) and the Upsample it replaced (opset 7-9): nearest, (n-)linear and (n-)cubic
// interpolation with every ONNX coordinate_transformation_mode, and opset 18's `axes` and
// `keep_aspect_ratio_policy` (antialias is refused for linear/cubic; it changes nothing for nearest).
//
// Interpolation is separable, so each resized axis is done on its own: the source coordinate of
// every output position is computed on the CPU in double precision exactly as the ONNX reference
// (onnx/backend/test/case/node/resize.py) does, giving K taps (1 nearest, 2 linear, 4 cubic) with
// weights; the axis is then one index_select of the taps and a weighted sum over K. The tap tables
// depend only on the input shape and the scales/sizes/roi values, so they are cached.
// at::upsample_* is not used: it implements only some of the coordinate modes and rounds
// nearest neighbours differently.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>

#include "exec/ops/shape_internal.h"

namespace mixq {
namespace shape_ops {
namespace {

using Tensors = std::vector<at::Tensor>;

enum class Mode { kNearest, kLinear, kCubic };
enum class Coord { kHalfPixel, kPytorchHalfPixel, kAlignCorners, kAsymmetric, kTfHalfPixelForNN,
                   kTfCropAndResize };
// kSimple: opset 10 (Upsample semantics): floor when upsampling, ceil when downsampling.
enum class Nearest { kRoundPreferFloor, kRoundPreferCeil, kFloor, kCeil, kSimple };

// How one axis is resized.
struct AxisPlan {
  // kGather: index_select of the taps (and a weighted sum when taps > 1). Nearest axes whose
  // source indices follow a simple pattern avoid the gather, which is slow on inner axes:
  // kSlice: index = start + o * step (a strided view); kRepeat: index = o / repeat (integer
  // upsampling, done for all such axes with one expand + reshape).
  enum Kind { kGather, kSlice, kRepeat } kind = kGather;
  int64_t axis = 0;
  int64_t out = 0;
  int64_t taps = 1;
  at::Tensor index;   // [out * taps] int64
  at::Tensor weight;  // [out, taps] in the compute dtype; undefined for nearest
  int64_t start = 0, step = 1, repeat = 1;
  std::vector<bool> outside;  // tf_crop_and_resize: positions that take extrapolation_value
  bool any_outside = false;
};

class Resize final : public OpKernel {
 public:
  explicit Resize(const NodeInfo& info) {
    const std::string mode = info.get_string("mode", "nearest");
    if (mode == "nearest") mode_ = Mode::kNearest;
    else if (mode == "linear" || (info.opset() < 11 && mode == "bilinear")) mode_ = Mode::kLinear;
    else if (mode == "cubic" && info.opset() >= 11) mode_ = Mode::kCubic;
    else info.fail("attribute 'mode' must be nearest, linear or cubic, got '" + mode + "'");

    if (info.opset() < 11) {  // Resize-10 and Upsample-7/9, which it replaced, share semantics
      coord_ = Coord::kAsymmetric;
      nearest_ = Nearest::kSimple;
      scales_idx_ = 1;
      sizes_idx_ = -1;
      roi_idx_ = -1;
      if (info.node().op_type == "Upsample" && info.opset() < 9) {  // scales is an attribute
        if (!info.has_attr("scales")) info.fail("attribute 'scales' is required");
        for (float f : info.get_floats("scales")) scales_attr_.push_back(f);
        scales_idx_ = -1;
      }
    } else {
      const std::string c = info.get_string("coordinate_transformation_mode", "half_pixel");
      if (c == "half_pixel") coord_ = Coord::kHalfPixel;
      else if (c == "pytorch_half_pixel") coord_ = Coord::kPytorchHalfPixel;
      else if (c == "align_corners") coord_ = Coord::kAlignCorners;
      else if (c == "asymmetric") coord_ = Coord::kAsymmetric;
      else if (c == "tf_half_pixel_for_nn" || c == "tf_half_pixel_for_nearest")
        coord_ = Coord::kTfHalfPixelForNN;
      else if (c == "tf_crop_and_resize") coord_ = Coord::kTfCropAndResize;
      else if (c == "half_pixel_symmetric")
        info.unsupported("coordinate_transformation_mode 'half_pixel_symmetric' (opset 19)");
      else info.fail("unknown coordinate_transformation_mode '" + c + "'");

      const std::string n = info.get_string("nearest_mode", "round_prefer_floor");
      if (n == "round_prefer_floor") nearest_ = Nearest::kRoundPreferFloor;
      else if (n == "round_prefer_ceil") nearest_ = Nearest::kRoundPreferCeil;
      else if (n == "floor") nearest_ = Nearest::kFloor;
      else if (n == "ceil") nearest_ = Nearest::kCeil;
      else info.fail("unknown nearest_mode '" + n + "'");

      cubic_a_ = info.get_float("cubic_coeff_a", -0.75f);
      exclude_outside_ = info.get_int("exclude_outside", 0) != 0;
      extrapolation_ = info.get_float("extrapolation_value", 0.0f);
      if (info.opset() >= 18) {
        if (info.get_int("antialias", 0) != 0 && mode_ != Mode::kNearest)
          info.unsupported("attribute 'antialias' = 1 (antialiased linear/cubic downscaling) is not implemented");
        axes_ = info.get_ints("axes");
        for (size_t i = 0; i < axes_.size(); ++i)
          for (size_t j = 0; j < i; ++j)
            if (axes_[i] == axes_[j]) info.fail("attribute 'axes' has duplicates");
        const std::string k = info.get_string("keep_aspect_ratio_policy", "stretch");
        if (k == "stretch") keep_ = Keep::kStretch;
        else if (k == "not_larger") keep_ = Keep::kNotLarger;
        else if (k == "not_smaller") keep_ = Keep::kNotSmaller;
        else info.fail("keep_aspect_ratio_policy must be stretch, not_larger or not_smaller, got '" + k + "'");
      }
      roi_idx_ = 1;
      scales_idx_ = 2;
      sizes_idx_ = 3;
    }
    // Constant operands are read once; run-time ones on every call.
    auto constant = [&](int idx, std::vector<double>& v) {
      if (idx < 0 || !info.has_input(idx)) return true;  // absent: constant "empty"
      const at::Tensor* c = info.constant_input(idx);
      if (c == nullptr) return false;
      v = float_values(*c);
      return true;
    };
    const_operands_ = constant(roi_idx_, roi_) && constant(scales_idx_, scales_) &&
                      constant(sizes_idx_, sizes_);
    if (!scales_attr_.empty()) scales_ = scales_attr_;
    if (const_operands_ && !scales_.empty() && !sizes_.empty())
      info.fail("only one of 'scales' and 'sizes' may be given");
  }

  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor& x = in[0];
    bool changed = !plans_valid_;
    if (!const_operands_) {  // run-time operands: re-plan only when their values change
      auto read = [&](int idx, std::vector<double>& v) {
        std::vector<double> now;
        if (idx >= 0 && idx < static_cast<int>(in.size()) && in[idx].defined()) now = float_values(in[idx]);
        if (now != v) v = std::move(now), changed = true;
      };
      read(roi_idx_, roi_);
      read(scales_idx_, scales_);
      read(sizes_idx_, sizes_);
    }
    if (changed || !x.sizes().equals(planned_shape_) || x.scalar_type() != planned_dtype_) plan(x);

    // Non-float inputs are interpolated in float; nearest only copies, so it keeps the dtype.
    const at::ScalarType dt = x.scalar_type();
    const bool mix = mode_ != Mode::kNearest;
    const at::ScalarType ct = (dt == at::kDouble) ? at::kDouble : at::kFloat;
    at::Tensor y = (mix && dt != ct) ? x.to(ct) : x;
    for (const AxisPlan& p : plans_)
      if (p.kind == AxisPlan::kSlice) y = y.slice(p.axis, p.start, p.start + (p.out - 1) * p.step + 1, p.step);
    if (!repeat_view_.empty()) y = y.reshape(repeat_view_).expand(repeat_expand_).reshape(repeat_out_);
    for (const AxisPlan& p : plans_) {
      if (p.kind != AxisPlan::kGather) continue;
      if (p.taps == 1) {
        y = y.index_select(p.axis, p.index);
        continue;
      }
      at::Tensor g = y.index_select(p.axis, p.index);
      std::vector<int64_t> shape(g.sizes().begin(), g.sizes().end());
      shape[p.axis] = p.out;
      shape.insert(shape.begin() + p.axis + 1, p.taps);
      g = g.view(shape);
      std::vector<int64_t> wshape(shape.size() - p.axis, 1);
      wshape[0] = p.out;
      wshape[1] = p.taps;
      y = (g * p.weight.view(wshape)).sum(p.axis + 1);
    }
    if (any_outside_) y = y.masked_fill(outside_mask_, extrapolation_);
    if (y.scalar_type() != dt) y = at::isFloatingType(dt) ? y.to(dt) : y.round().to(dt);
    if (plans_.empty() && !any_outside_) y = x;
    out[0] = y;
  }

 private:
  void plan(const at::Tensor& x) {
    // The tables outlive this run: built as normal tensors even when the run is in inference
    // mode, so a later run with autograd on (reconstruction) can save them for backward.
    c10::InferenceMode normal_tensors(false);
    plans_valid_ = false;
    const int64_t r = x.dim();
    const bool has_scales = !scales_.empty(), has_sizes = !sizes_.empty();
    if (has_scales == has_sizes)
      runtime_fail(has_scales ? "only one of 'scales' and 'sizes' may be given"
                              : "one of 'scales' and 'sizes' must be given");
    // The axes the operands describe (opset 18 `axes`; else all, in order), and the operands
    // widened to every axis: scale 1, the input size, roi [0, 1] on the others.
    std::vector<int64_t> axes;
    for (int64_t a : axes_) axes.push_back(norm_axis(a, r));
    if (axes_.empty())
      for (int64_t a = 0; a < r; ++a) axes.push_back(a);
    const int64_t na = static_cast<int64_t>(axes.size());
    if (static_cast<int64_t>(has_scales ? scales_.size() : sizes_.size()) != na)
      runtime_fail(detail::concat(has_scales ? "scales" : "sizes", " must have ", na, " entries"));
    const bool crop = coord_ == Coord::kTfCropAndResize;
    if (crop && static_cast<int64_t>(roi_.size()) != 2 * na)
      runtime_fail(detail::concat("roi must have ", 2 * na, " entries for tf_crop_and_resize"));
    std::vector<double> scales(r, 1.0), sizes(r), roi(2 * r);
    std::vector<bool> listed(r, false);
    for (int64_t a = 0; a < r; ++a) sizes[a] = static_cast<double>(x.size(a)), roi[a + r] = 1.0;
    for (int64_t i = 0; i < na; ++i) {
      const int64_t a = axes[i];
      if (listed[a]) runtime_fail("axes has duplicates");
      listed[a] = true;
      if (has_scales) scales[a] = scales_[i];
      else sizes[a] = sizes_[i];
      if (crop) roi[a] = roi_[i], roi[a + r] = roi_[i + na];
    }
    // keep_aspect_ratio_policy: one scale for every listed axis, the smallest (not_larger) or the
    // largest (not_smaller) of sizes / input; each such axis is then round(scale * input) long.
    double common = 0;
    if (has_sizes && keep_ != Keep::kStretch) {
      bool first = true;
      for (int64_t a : axes) {
        if (x.size(a) == 0) runtime_fail(detail::concat("cannot resize the empty axis ", a));
        const double s = sizes[a] / static_cast<double>(x.size(a));
        if (first || (keep_ == Keep::kNotLarger ? s < common : s > common)) common = s;
        first = false;
      }
    }

    plans_.clear();
    std::vector<at::Tensor> masks;
    any_outside_ = false;
    for (int64_t a = 0; a < r; ++a) {
      const int64_t n = x.size(a);
      const double rs = crop ? roi[a] : 0.0, re = crop ? roi[a + r] : 1.0;
      int64_t m;
      double scale, length;  // length: the (possibly fractional) resized length the formulas use
      if (has_scales) {
        scale = scales[a];
        if (!(scale > 0)) runtime_fail("scales must be positive");
        length = n * (re - rs) * scale;
        m = static_cast<int64_t>(std::floor(length));
      } else {
        m = static_cast<int64_t>(sizes[a]);
        if (m < 0) runtime_fail("sizes must be non-negative");
        scale = n > 0 ? static_cast<double>(m) / n : 1.0;
        length = static_cast<double>(m);
        if (common > 0 && listed[a]) {
          scale = common;
          length = common * n;
          m = static_cast<int64_t>(std::floor(length + 0.5));
        }
      }
      AxisPlan p = plan_axis(a, n, m, scale, length, rs, re);
      if (p.taps == 0) continue;  // identity
      if (p.any_outside) {
        std::vector<int64_t> mshape(r, 1);
        mshape[a] = m;
        std::vector<uint8_t> mv(p.outside.begin(), p.outside.end());
        masks.push_back(at::tensor(mv, at::kByte).to(at::kBool).view(mshape));
        any_outside_ = true;
      }
      plans_.push_back(std::move(p));
    }
    // Shapes for the repeat axes, applied after the slices.
    repeat_view_.clear();
    repeat_expand_.clear();
    repeat_out_.clear();
    bool any_repeat = false;
    std::vector<int64_t> cur(x.sizes().begin(), x.sizes().end());
    std::vector<int64_t> rep(r, 1);
    for (const AxisPlan& p : plans_) {
      if (p.kind == AxisPlan::kSlice) cur[p.axis] = p.out;
      if (p.kind == AxisPlan::kRepeat) rep[p.axis] = p.repeat, any_repeat = true;
    }
    if (any_repeat) {
      for (int64_t a = 0; a < r; ++a) {
        repeat_view_.push_back(cur[a]);
        repeat_expand_.push_back(cur[a]);
        repeat_out_.push_back(cur[a] * rep[a]);
        if (rep[a] > 1) {
          repeat_view_.push_back(1);
          repeat_expand_.push_back(rep[a]);
        }
      }
    }
    if (any_outside_) {
      outside_mask_ = masks[0];
      for (size_t i = 1; i < masks.size(); ++i) outside_mask_ = outside_mask_ | masks[i];
    }
    const at::ScalarType ct = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    for (AxisPlan& p : plans_)
      if (p.weight.defined()) p.weight = p.weight.to(ct);
    planned_shape_.assign(x.sizes().begin(), x.sizes().end());
    planned_dtype_ = x.scalar_type();
    plans_valid_ = true;
  }

  double source_coord(int64_t xo, int64_t n, double scale, double length, double rs, double re) const {
    const double x = static_cast<double>(xo);
    switch (coord_) {
      case Coord::kHalfPixel: return (x + 0.5) / scale - 0.5;
      case Coord::kPytorchHalfPixel: return length > 1 ? (x + 0.5) / scale - 0.5 : 0.0;
      case Coord::kAlignCorners: return length == 1 ? 0.0 : x * (n - 1) / (length - 1);
      case Coord::kAsymmetric: return x / scale;
      case Coord::kTfHalfPixelForNN: return (x + 0.5) / scale;
      case Coord::kTfCropAndResize:
        return length > 1 ? rs * (n - 1) + x * (re - rs) * (n - 1) / (length - 1)
                          : 0.5 * (rs + re) * (n - 1);
    }
    return x;
  }

  // Weights of the taps floor(c)-1 .. floor(c)+2 for the fractional part t of c.
  void cubic_weights(double t, double w[4]) const {
    const double A = cubic_a_;
    auto near = [&](double d) { return ((A + 2) * d - (A + 3)) * d * d + 1; };            // |d| <= 1
    auto far = [&](double d) { return ((A * d - 5 * A) * d + 8 * A) * d - 4 * A; };      // 1 < |d| < 2
    w[0] = far(t + 1);
    w[1] = near(t);
    w[2] = near(1 - t);
    w[3] = far(2 - t);
  }

  // taps == 0 in the result: the axis maps every position onto itself.
  AxisPlan plan_axis(int64_t a, int64_t n, int64_t m, double scale, double length, double rs,
                     double re) const {
    AxisPlan p;
    p.axis = a;
    p.out = m;
    p.taps = mode_ == Mode::kNearest ? 1 : mode_ == Mode::kLinear ? 2 : 4;
    if (m > 0 && n == 0) runtime_fail(detail::concat("cannot resize the empty axis ", a));
    std::vector<int64_t> idx(m * p.taps);
    std::vector<double> w(m * p.taps);
    p.outside.assign(m, false);
    bool identity = (m == n);
    auto clampi = [&](int64_t i) { return std::min<int64_t>(std::max<int64_t>(i, 0), n - 1); };
    for (int64_t o = 0; o < m; ++o) {
      const double c = source_coord(o, n, scale, length, rs, re);
      if (coord_ == Coord::kTfCropAndResize && (c < 0 || c > n - 1)) {
        p.outside[o] = true;
        p.any_outside = true;
        identity = false;
        for (int64_t k = 0; k < p.taps; ++k) {
          idx[o * p.taps + k] = 0;
          w[o * p.taps + k] = k == 0 ? 1.0 : 0.0;
        }
        continue;
      }
      const double f = std::floor(c);
      const double t = c - f;
      const int64_t i0 = static_cast<int64_t>(f);
      if (mode_ == Mode::kNearest) {
        int64_t i = i0;
        if (t != 0) {
          switch (nearest_) {
            case Nearest::kRoundPreferFloor: i = t <= 0.5 ? i0 : i0 + 1; break;
            case Nearest::kRoundPreferCeil: i = t < 0.5 ? i0 : i0 + 1; break;
            case Nearest::kFloor: i = i0; break;
            case Nearest::kCeil: i = i0 + 1; break;
            case Nearest::kSimple: i = scale < 1 ? i0 + 1 : i0; break;
          }
        }
        idx[o] = clampi(i);
        w[o] = 1.0;
        identity = identity && idx[o] == o;
        continue;
      }
      double wt[4];
      int64_t first;
      if (mode_ == Mode::kLinear) {
        wt[0] = 1 - t;
        wt[1] = t;
        first = i0;
      } else {
        cubic_weights(t, wt);
        first = i0 - 1;
        if (exclude_outside_) {
          double sum = 0;
          for (int k = 0; k < 4; ++k) {
            if (first + k < 0 || first + k >= n) wt[k] = 0;
            sum += wt[k];
          }
          for (int k = 0; k < 4; ++k) wt[k] /= sum;
        }
      }
      for (int64_t k = 0; k < p.taps; ++k) {
        idx[o * p.taps + k] = clampi(first + k);
        w[o * p.taps + k] = wt[k];
      }
      identity = identity && t == 0 && i0 == o;
    }
    if (identity) {
      p.taps = 0;
      return p;
    }
    if (mode_ == Mode::kNearest && !p.any_outside && m > 0) {
      const int64_t step = m > 1 ? idx[1] - idx[0] : 1;
      bool affine = step >= 1, repeat = m % n == 0 && m > n;
      const int64_t k = m / n;
      for (int64_t o = 0; o < m; ++o) {
        affine = affine && idx[o] == idx[0] + o * step;
        repeat = repeat && idx[o] == o / k;
      }
      if (repeat) {
        p.kind = AxisPlan::kRepeat;
        p.repeat = k;
        return p;
      }
      if (affine) {
        p.kind = AxisPlan::kSlice;
        p.start = idx[0];
        p.step = step;
        return p;
      }
    }
    p.index = at::tensor(idx, at::kLong);
    p.weight = at::tensor(w, at::kDouble).view({m, p.taps});
    if (mode_ == Mode::kNearest) p.weight = at::Tensor();
    return p;
  }

  Mode mode_ = Mode::kNearest;
  Coord coord_ = Coord::kHalfPixel;
  Nearest nearest_ = Nearest::kRoundPreferFloor;
  double cubic_a_ = -0.75;
  bool exclude_outside_ = false;
  double extrapolation_ = 0;
  enum class Keep { kStretch, kNotLarger, kNotSmaller };
  Keep keep_ = Keep::kStretch;
  std::vector<int64_t> axes_;  // opset 18; empty = every axis
  int roi_idx_ = -1, scales_idx_ = -1, sizes_idx_ = -1;
  bool const_operands_ = false;
  std::vector<double> roi_, scales_, sizes_;
  std::vector<double> scales_attr_;  // Upsample-7

  bool plans_valid_ = false;
  std::vector<int64_t> planned_shape_;
  at::ScalarType planned_dtype_ = at::kFloat;
  std::vector<AxisPlan> plans_;
  bool any_outside_ = false;
  at::Tensor outside_mask_;
  std::vector<int64_t> repeat_view_, repeat_expand_, repeat_out_;
};

}  // namespace

const std::vector<OpRow>& resize_rows() {
  static const std::vector<OpRow> rows = {
      {"Resize", 10, 18, make_kernel<Resize>},
      {"Upsample", 7, 9, make_kernel<Resize>},
  };
  return rows;
}

}  // namespace shape_ops
}  // namespace mixq
