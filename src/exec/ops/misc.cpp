// Odds and ends older and newer exporters emit: DepthToSpace/SpaceToDepth, Size, Einsum, Hardmax,
// EyeLike, CenterCropPad (opset 18), GridSample, Det, NonMaxSuppression; the normalizations LRN,
// MeanVarianceNormalization, GroupNormalization (opset 18, per-group scale and bias) and
// GlobalLpPool; and the integer ops of already-quantized models, DynamicQuantizeLinear and
// MatMulInteger.
#include <ATen/ATen.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "exec/ops/ops.h"

namespace mixq {
namespace {

using Tensors = std::vector<at::Tensor>;

[[noreturn]] void runtime_fail(const std::string& msg) { throw Error(ErrorKind::kRuntime, msg); }

int64_t norm_axis(int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= std::max<int64_t>(rank, 1))
    runtime_fail(detail::concat("axis ", axis, " is out of range for a rank-", rank, " input"));
  return axis < 0 ? axis + rank : axis;
}

// x [N, C, H, W] -> [N, C/b^2, H*b, W*b]. DCR (the default): depth is split as (b, b, C/b^2);
// CRD (opset 11 mode): as (C/b^2, b, b).
class DepthToSpace final : public OpKernel {
 public:
  explicit DepthToSpace(const NodeInfo& info) : b_(info.req_int("blocksize")) {
    if (b_ < 1) info.fail("attribute 'blocksize' must be positive");
    const std::string mode = info.opset() >= 11 ? info.get_string("mode", "DCR") : "DCR";
    if (mode != "DCR" && mode != "CRD") info.fail("attribute 'mode' must be DCR or CRD, got '" + mode + "'");
    crd_ = mode == "CRD";
  }
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor& x = in[0];
    if (x.dim() != 4) runtime_fail(detail::concat("input must have rank 4, got shape ", x.sizes()));
    const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), b = b_;
    if (C % (b * b) != 0) runtime_fail(detail::concat("channels ", C, " are not a multiple of blocksize^2"));
    const int64_t c = C / (b * b);
    at::Tensor y = crd_ ? x.reshape({N, c, b, b, H, W}).permute({0, 1, 4, 2, 5, 3})
                        : x.reshape({N, b, b, c, H, W}).permute({0, 3, 4, 1, 5, 2});
    out[0] = y.reshape({N, c, H * b, W * b});
  }

 private:
  int64_t b_;
  bool crd_ = false;
};

// x [N, C, H, W] -> [N, C*b^2, H/b, W/b], depth ordered (b, b, C).
class SpaceToDepth final : public OpKernel {
 public:
  explicit SpaceToDepth(const NodeInfo& info) : b_(info.req_int("blocksize")) {
    if (b_ < 1) info.fail("attribute 'blocksize' must be positive");
  }
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor& x = in[0];
    if (x.dim() != 4) runtime_fail(detail::concat("input must have rank 4, got shape ", x.sizes()));
    const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), b = b_;
    if (H % b != 0 || W % b != 0)
      runtime_fail(detail::concat("spatial size ", H, "x", W, " is not a multiple of blocksize ", b));
    out[0] = x.reshape({N, C, H / b, b, W / b, b}).permute({0, 3, 5, 1, 2, 4}).reshape({N, C * b * b, H / b, W / b});
  }

 private:
  int64_t b_;
};

class Size final : public OpKernel {
 public:
  explicit Size(const NodeInfo&) {}
  void compute(const Tensors& in, Tensors& out) override {
    out[0] = at::scalar_tensor(in[0].numel(), at::kLong);
  }
};

class Einsum final : public OpKernel {
 public:
  explicit Einsum(const NodeInfo& info) {
    for (char c : info.get_string("equation", ""))
      if (c != ' ') equation_ += c;
    if (equation_.empty()) info.fail("attribute 'equation' is required");
  }
  void compute(const Tensors& in, Tensors& out) override { out[0] = at::einsum(equation_, in); }

 private:
  std::string equation_;
};

// 1 at the first maximum along the axis, 0 elsewhere. Before opset 13 the input is seen as 2-D
// [prod(dims < axis), prod(dims >= axis)] (default axis 1); from 13 it is one axis (default -1).
class Hardmax final : public OpKernel {
 public:
  explicit Hardmax(const NodeInfo& info)
      : legacy_(info.opset() < 13), axis_(info.get_int("axis", info.opset() < 13 ? 1 : -1)) {}
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor& x = in[0];
    at::Tensor v = x;
    int64_t a;
    if (legacy_) {
      const int64_t r = x.dim();
      const int64_t ax = axis_ < 0 ? axis_ + r : axis_;
      if (ax < 0 || ax > r) runtime_fail(detail::concat("axis ", axis_, " is out of range for rank ", r));
      int64_t outer = 1;
      for (int64_t d = 0; d < ax; ++d) outer *= x.size(d);
      v = x.reshape({outer, -1});
      a = 1;
    } else {
      a = norm_axis(axis_, x.dim());
    }
    at::Tensor y = at::zeros_like(v).scatter(a, v.argmax(a, /*keepdim=*/true), 1);
    out[0] = y.reshape(x.sizes());
  }

 private:
  bool legacy_;
  int64_t axis_;
};

// A 2-D tensor of x's shape with ones on diagonal k; dtype from the attribute, else x's.
class EyeLike final : public OpKernel {
 public:
  explicit EyeLike(const NodeInfo& info) : k_(info.get_int("k", 0)) {
    if (info.has_attr("dtype")) {
      const int64_t t = info.get_int("dtype", 1);
      if (t <= 0 || t > static_cast<int64_t>(DType::kBFloat16)) info.fail("attribute 'dtype' is not a data type");
      dtype_ = scalar_type_for(static_cast<DType>(t), info.where());
      has_dtype_ = true;
    }
  }
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor& x = in[0];
    if (x.dim() != 2) runtime_fail(detail::concat("input must have rank 2, got shape ", x.sizes()));
    const at::ScalarType dt = has_dtype_ ? dtype_ : x.scalar_type();
    at::Tensor ones = at::ones({x.size(0), x.size(1)}, at::TensorOptions().dtype(at::kFloat));
    out[0] = ones.triu(k_).tril(k_).to(dt);
  }

 private:
  int64_t k_;
  bool has_dtype_ = false;
  at::ScalarType dtype_ = at::kFloat;
};

// Pads (centered, the extra element at the end) or crops (centered, start rounded down) each of
// `axes` (all axes by default) to the length in `shape`.
class CenterCropPad final : public OpKernel {
 public:
  explicit CenterCropPad(const NodeInfo& info) : axes_(info.get_ints("axes")) {}
  void compute(const Tensors& in, Tensors& out) override {
    at::Tensor y = in[0];
    const int64_t r = y.dim();
    at::Tensor s = in[1].to(at::kLong).contiguous();
    std::vector<int64_t> shape(s.data_ptr<int64_t>(), s.data_ptr<int64_t>() + s.numel());
    std::vector<int64_t> axes = axes_;
    if (axes.empty())
      for (int64_t a = 0; a < r; ++a) axes.push_back(a);
    if (shape.size() != axes.size())
      runtime_fail(detail::concat("shape has ", shape.size(), " entries for ", axes.size(), " axes"));
    for (size_t i = 0; i < axes.size(); ++i) {
      const int64_t a = norm_axis(axes[i], r), n = y.size(a), m = shape[i];
      if (m < 0) runtime_fail("shape must be non-negative");
      if (m < n) {
        y = y.narrow(a, (n - m) / 2, m);
      } else if (m > n) {
        std::vector<int64_t> pad(2 * (r - a), 0);  // libtorch order: last axis first
        pad[2 * (r - 1 - a)] = (m - n) / 2;
        pad[2 * (r - 1 - a) + 1] = m - n - (m - n) / 2;
        y = at::constant_pad_nd(y, pad, 0);
      }
    }
    out[0] = y;
  }

 private:
  std::vector<int64_t> axes_;
};

// y = x / (bias + alpha / size * sum of x^2 over the `size` channels around c)^beta, the window
// reaching floor((size-1)/2) channels back and ceil((size-1)/2) forward.
class LRN final : public OpKernel {
 public:
  explicit LRN(const NodeInfo& info)
      : alpha_(info.get_float("alpha", 1e-4f)),
        beta_(info.get_float("beta", 0.75f)),
        bias_(info.get_float("bias", 1.0f)),
        size_(info.req_int("size")) {
    if (size_ < 1) info.fail("attribute 'size' must be positive");
  }
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor& x = in[0];
    if (x.dim() < 2) runtime_fail("input must have rank >= 2");
    const int64_t N = x.size(0), C = x.size(1);
    at::Tensor sq = x.square().reshape({N, C, -1}).transpose(1, 2);  // [N, L, C]
    const int64_t front = (size_ - 1) / 2, back = size_ - 1 - front;
    at::Tensor win = at::constant_pad_nd(sq, {front, back}, 0).unfold(2, size_, 1).sum(-1);  // [N, L, C]
    at::Tensor sum = win.transpose(1, 2).reshape(x.sizes());
    out[0] = x / (sum * (alpha_ / size_) + bias_).pow(beta_);
  }

 private:
  double alpha_, beta_, bias_;
  int64_t size_;
};

// (x - mean) / (sqrt(mean(x^2) - mean^2) + 1e-9) over `axes` (default 0, 2, 3), as ONNX's function
// body computes it.
class MeanVarianceNormalization final : public OpKernel {
 public:
  explicit MeanVarianceNormalization(const NodeInfo& info) : axes_(info.get_ints("axes", {0, 2, 3})) {}
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor& x = in[0];
    std::vector<int64_t> dims;
    for (int64_t a : axes_) dims.push_back(norm_axis(a, x.dim()));
    at::Tensor mean = x.mean(dims, /*keepdim=*/true);
    at::Tensor var = x.square().mean(dims, true) - mean.square();
    out[0] = (x - mean) / (var.sqrt() + 1e-9);
  }

 private:
  std::vector<int64_t> axes_;
};

// Opset 18: x [N, C, ...] normalized over each of num_groups channel groups, then scaled and
// shifted by scale[g], bias[g] (one value per group; opset 21 made them per channel).
class GroupNormalization final : public OpKernel {
 public:
  explicit GroupNormalization(const NodeInfo& info)
      : groups_(info.req_int("num_groups")), eps_(info.get_float("epsilon", 1e-5f)) {
    if (groups_ < 1) info.fail("attribute 'num_groups' must be positive");
  }
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor &x = in[0], &scale = in[1], &bias = in[2];
    if (x.dim() < 2 || x.size(1) % groups_ != 0)
      runtime_fail(detail::concat("channels of ", x.sizes(), " do not split into ", groups_, " groups"));
    if (scale.numel() != groups_ || bias.numel() != groups_)
      runtime_fail(detail::concat("scale and bias must have ", groups_, " entries"));
    const int64_t per = x.size(1) / groups_;
    out[0] = at::group_norm(x, groups_, scale.reshape({-1}).repeat_interleave(per),
                            bias.reshape({-1}).repeat_interleave(per), eps_);
  }

 private:
  int64_t groups_;
  double eps_;
};

// (sum over the spatial axes of |x|^p)^(1/p), spatial axes kept with size 1.
class GlobalLpPool final : public OpKernel {
 public:
  explicit GlobalLpPool(const NodeInfo& info) : p_(info.opset() >= 2 ? info.get_int("p", 2) : 2) {
    if (info.opset() < 2) p_ = static_cast<int64_t>(info.get_float("p", 2.0f));
    if (p_ < 1) info.fail("attribute 'p' must be positive");
  }
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor& x = in[0];
    if (x.dim() < 3) runtime_fail("input must have rank >= 3");
    std::vector<int64_t> dims;
    for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
    out[0] = x.abs().pow(static_cast<double>(p_)).sum(dims, true).pow(1.0 / p_);
  }

 private:
  int64_t p_;
};

// Opset 16 (4-D): at::grid_sampler implements the same modes, padding modes and align_corners.
class GridSample final : public OpKernel {
 public:
  explicit GridSample(const NodeInfo& info) : align_(info.get_int("align_corners", 0) != 0) {
    const std::string m = info.get_string("mode", "bilinear");
    if (m == "bilinear" || m == "linear") mode_ = 0;
    else if (m == "nearest") mode_ = 1;
    else if (m == "bicubic" || m == "cubic") mode_ = 2;
    else info.fail("attribute 'mode' must be bilinear, nearest or bicubic, got '" + m + "'");
    const std::string p = info.get_string("padding_mode", "zeros");
    if (p == "zeros") pad_ = 0;
    else if (p == "border") pad_ = 1;
    else if (p == "reflection") pad_ = 2;
    else info.fail("attribute 'padding_mode' must be zeros, border or reflection, got '" + p + "'");
  }
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor &x = in[0], &grid = in[1];
    if (x.dim() != 4 || grid.dim() != 4)
      throw Error(ErrorKind::kUnsupported, "GridSample is implemented for 4-D inputs only");
    out[0] = at::grid_sampler(x, grid.to(x.scalar_type()), mode_, pad_, align_);
  }

 private:
  int64_t mode_ = 0, pad_ = 0;
  bool align_;
};

class Det final : public OpKernel {
 public:
  explicit Det(const NodeInfo&) {}
  void compute(const Tensors& in, Tensors& out) override { out[0] = at::linalg_det(in[0]); }
};

// uint8 quantization of x over its own range (extended to include 0): scale = (max - min) / 255,
// zero point = round(-min / scale) clamped to [0, 255]; rounding is half to even.
class DynamicQuantizeLinear final : public OpKernel {
 public:
  explicit DynamicQuantizeLinear(const NodeInfo&) {}
  void compute(const Tensors& in, Tensors& out) override {
    at::Tensor x = in[0].to(at::kFloat);
    const float lo = std::min(0.0f, x.numel() ? x.min().item<float>() : 0.0f);
    const float hi = std::max(0.0f, x.numel() ? x.max().item<float>() : 0.0f);
    const float scale = (hi - lo) / 255.0f;
    if (scale == 0) {  // all zeros
      out[0] = at::zeros(x.sizes(), x.options().dtype(at::kByte));
      out[1] = at::scalar_tensor(0.0f, at::kFloat);
      out[2] = at::scalar_tensor(0, at::kByte);
      return;
    }
    const float zp = std::min(255.0f, std::max(0.0f, std::nearbyint(0.0f - lo / scale)));
    out[0] = at::clamp(at::round(x / scale) + zp, 0, 255).to(at::kByte);
    out[1] = at::scalar_tensor(scale, at::kFloat);
    out[2] = at::scalar_tensor(static_cast<int64_t>(zp), at::kByte);
  }
};

// (A - a_zero_point) x (B - b_zero_point) in int32. a_zero_point is a scalar or one per row of A,
// b_zero_point a scalar or one per column of B.
class MatMulInteger final : public OpKernel {
 public:
  explicit MatMulInteger(const NodeInfo&) {}
  void compute(const Tensors& in, Tensors& out) override {
    at::Tensor a = in[0].to(at::kLong), b = in[1].to(at::kLong);
    if (in.size() > 2 && in[2].defined() && in[2].numel() > 0) {
      at::Tensor zp = in[2].to(at::kLong);
      a = a - (zp.dim() == 1 && zp.numel() > 1 ? zp.unsqueeze(-1) : zp);
    }
    if (in.size() > 3 && in[3].defined() && in[3].numel() > 0) b = b - in[3].to(at::kLong);
    // libtorch's CPU matmul has no integer kernel; products of 8-bit values summed in double stay
    // exact up to 2^53 / 2^16 terms.
    out[0] = at::matmul(a.to(at::kDouble), b.to(at::kDouble)).round().to(at::kInt);
  }
};

// Greedy per-class non-maximum suppression, as ONNX Runtime does it: boxes whose score is above
// score_threshold are taken in descending score order (ties: lower index first) unless their IoU
// with an already selected box exceeds iou_threshold, up to max_output_boxes_per_class (0: none).
// Output [K, 3] = (batch, class, box) rows, batch-major then class then selection order.
class NonMaxSuppression final : public OpKernel {
 public:
  explicit NonMaxSuppression(const NodeInfo& info) : center_(info.get_int("center_point_box", 0)) {
    if (center_ != 0 && center_ != 1) info.fail("attribute 'center_point_box' must be 0 or 1");
  }
  void compute(const Tensors& in, Tensors& out) override {
    auto scalar = [&](size_t i, double dflt) {
      if (i >= in.size() || !in[i].defined() || in[i].numel() == 0) return dflt;
      return in[i].reshape({-1})[0].to(at::kDouble).item<double>();
    };
    const at::Tensor boxes = in[0].to(at::kFloat).contiguous(), scores = in[1].to(at::kFloat).contiguous();
    if (boxes.dim() != 3 || boxes.size(2) != 4 || scores.dim() != 3 || scores.size(0) != boxes.size(0) ||
        scores.size(2) != boxes.size(1))
      runtime_fail(detail::concat("boxes ", boxes.sizes(), " and scores ", scores.sizes(),
                                  " must be [B, N, 4] and [B, C, N]"));
    const int64_t max_out = static_cast<int64_t>(scalar(2, 0));
    const double iou_thr = scalar(3, 0), score_thr = scalar(4, 0);
    const bool has_score_thr = in.size() > 4 && in[4].defined() && in[4].numel() > 0;
    const int64_t B = boxes.size(0), N = boxes.size(1), C = scores.size(1);
    const float* bx = boxes.data_ptr<float>();
    const float* sc = scores.data_ptr<float>();
    std::vector<int64_t> sel;
    std::vector<int64_t> order, picked;
    for (int64_t b = 0; b < B; ++b) {
      // Corners (y1, x1, y2, x2) with y1 <= y2, x1 <= x2.
      std::vector<std::array<float, 4>> c(N);
      for (int64_t n = 0; n < N; ++n) {
        const float* p = bx + (b * N + n) * 4;
        if (center_ == 1) {  // [x_center, y_center, width, height]
          c[n] = {p[1] - p[3] / 2, p[0] - p[2] / 2, p[1] + p[3] / 2, p[0] + p[2] / 2};
        } else {
          c[n] = {std::min(p[0], p[2]), std::min(p[1], p[3]), std::max(p[0], p[2]), std::max(p[1], p[3])};
        }
      }
      for (int64_t k = 0; k < C && max_out > 0; ++k) {
        const float* s = sc + (b * C + k) * N;
        order.clear();
        for (int64_t n = 0; n < N; ++n)
          if (!has_score_thr || s[n] > score_thr) order.push_back(n);
        std::stable_sort(order.begin(), order.end(), [&](int64_t i, int64_t j) { return s[i] > s[j]; });
        picked.clear();
        for (int64_t n : order) {
          if (static_cast<int64_t>(picked.size()) >= max_out) break;
          bool keep = true;
          for (int64_t m : picked)
            if (iou(c[n], c[m]) > iou_thr) {
              keep = false;
              break;
            }
          if (!keep) continue;
          picked.push_back(n);
          sel.insert(sel.end(), {b, k, n});
        }
      }
    }
    out[0] = at::tensor(sel, at::kLong).reshape({-1, 3});
  }

 private:
  static double iou(const std::array<float, 4>& a, const std::array<float, 4>& b) {
    const double ih = std::min(a[2], b[2]) - std::max(a[0], b[0]);
    const double iw = std::min(a[3], b[3]) - std::max(a[1], b[1]);
    if (ih <= 0 || iw <= 0) return 0;
    const double inter = ih * iw;
    const double area_a = double(a[2] - a[0]) * (a[3] - a[1]), area_b = double(b[2] - b[0]) * (b[3] - b[1]);
    const double uni = area_a + area_b - inter;
    return uni > 0 ? inter / uni : 0;
  }

  int64_t center_;
};

}  // namespace

const std::vector<OpRow>& misc_op_rows() {
  static const std::vector<OpRow> rows = {
      {"DepthToSpace", 1, 18, make_kernel<DepthToSpace>},
      {"SpaceToDepth", 1, 18, make_kernel<SpaceToDepth>},
      {"Size", 1, 18, make_kernel<Size>},
      {"Einsum", 12, 18, make_kernel<Einsum>},
      {"Hardmax", 1, 18, make_kernel<Hardmax>},
      {"EyeLike", 9, 18, make_kernel<EyeLike>},
      {"CenterCropPad", 18, 18, make_kernel<CenterCropPad>},
      {"LRN", 1, 18, make_kernel<LRN>},
      {"MeanVarianceNormalization", 9, 18, make_kernel<MeanVarianceNormalization>},
      {"GroupNormalization", 18, 18, make_kernel<GroupNormalization>},
      {"GlobalLpPool", 1, 18, make_kernel<GlobalLpPool>},
      {"GridSample", 16, 18, make_kernel<GridSample>},
      {"Det", 11, 18, make_kernel<Det>},
      {"DynamicQuantizeLinear", 11, 18, make_kernel<DynamicQuantizeLinear>},
      {"MatMulInteger", 10, 18, make_kernel<MatMulInteger>},
      {"NonMaxSuppression", 10, 18, make_kernel<NonMaxSuppression>},
  };
  return rows;
}

}  // namespace mixq
