// Indexing ops: Slice, Gather, GatherElements, Pad (opset 18: the 'axes' input).
#include <ATen/ATen.h>

#include <algorithm>
#include <limits>

#include "exec/ops/shape_internal.h"

namespace mixq {
namespace shape_ops {
namespace {

using Tensors = std::vector<at::Tensor>;

class Slice final : public OpKernel {
 public:
  explicit Slice(const NodeInfo& info) {
    if (info.opset() < 10) {
      if (!info.has_attr("starts") || !info.has_attr("ends"))
        info.fail("attributes 'starts' and 'ends' are required");
      starts_.set(info.get_ints("starts"));
      ends_.set(info.get_ints("ends"));
      if (info.has_attr("axes")) axes_.set(info.get_ints("axes"));
    } else {
      starts_.from_input(info, 1);
      ends_.from_input(info, 2);
      axes_.from_input(info, 3);
      steps_.from_input(info, 4);
      if (!starts_.present() || !ends_.present()) info.fail("inputs 'starts' and 'ends' are required");
    }
  }

  void compute(const Tensors& in, Tensors& out) override {
    at::Tensor y = in[0];
    const int64_t r = y.dim();
    const auto& starts = starts_.get(in);
    const auto& ends = ends_.get(in);
    const size_t n = starts.size();
    if (ends.size() != n) runtime_fail("starts and ends have different lengths");
    const std::vector<int64_t>* axes = axes_.present() ? &axes_.get(in) : nullptr;
    const std::vector<int64_t>* steps = steps_.present() ? &steps_.get(in) : nullptr;
    if (axes && axes->empty()) axes = nullptr;
    if (steps && steps->empty()) steps = nullptr;
    if ((axes && axes->size() != n) || (steps && steps->size() != n))
      runtime_fail("starts, ends, axes and steps must have the same length");
    for (size_t i = 0; i < n; ++i) {
      const int64_t a = norm_axis(axes ? (*axes)[i] : static_cast<int64_t>(i), r);
      const int64_t d = y.size(a);
      const int64_t step = steps ? (*steps)[i] : 1;
      if (step == 0) runtime_fail("a step is 0");
      int64_t s = starts[i], e = ends[i];
      if (s < 0) s += d;
      if (e < 0) e += d;
      if (step > 0) {
        s = std::clamp<int64_t>(s, 0, d);
        e = std::clamp<int64_t>(e, 0, d);
        if (s == 0 && e == d && step == 1) continue;
        y = y.slice(a, s, std::max(s, e), step);
      } else {
        // libtorch has no negative strides: take the same elements ascending, then flip.
        s = std::clamp<int64_t>(s, 0, d - 1);
        e = std::clamp<int64_t>(e, -1, d - 1);
        const int64_t st = -step;
        const int64_t count = (d > 0 && s > e) ? (s - e + st - 1) / st : 0;
        if (count == 0) {
          y = y.slice(a, 0, 0);
        } else {
          const int64_t lo = s - (count - 1) * st;
          y = y.slice(a, lo, s + 1, st).flip(a);
        }
      }
    }
    out[0] = y;
  }

 private:
  IntList starts_, ends_, axes_, steps_;
};

// Negative indices count from the end of the axis.
at::Tensor wrap_indices(const at::Tensor& idx, int64_t dim) {
  at::Tensor i = idx.scalar_type() == at::kLong ? idx : idx.to(at::kLong);
  return at::where(i < 0, i + dim, i);
}

class Gather final : public OpKernel {
 public:
  explicit Gather(const NodeInfo& info) : axis_(info.get_int("axis", 0)) {
    if (const at::Tensor* c = info.constant_input(1)) {
      if (c->dim() == 0) {
        scalar_ = true;
        scalar_index_ = int_values(*c)[0];
      }
    }
  }
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor& x = in[0];
    const int64_t a = norm_axis(axis_, x.dim());
    const int64_t d = x.size(a);
    if (scalar_) {  // the common "take element k of a shape" case: a view, no copy
      int64_t i = scalar_index_ < 0 ? scalar_index_ + d : scalar_index_;
      if (i < 0 || i >= d)
        runtime_fail(detail::concat("index ", scalar_index_, " is out of range for size ", d));
      out[0] = x.select(a, i);
      return;
    }
    const at::Tensor& idx = in[1];
    at::Tensor flat = wrap_indices(idx, d).reshape({-1});
    std::vector<int64_t> shape(x.sizes().begin(), x.sizes().begin() + a);
    shape.insert(shape.end(), idx.sizes().begin(), idx.sizes().end());
    shape.insert(shape.end(), x.sizes().begin() + a + 1, x.sizes().end());
    out[0] = x.index_select(a, flat).view(shape);
  }

 private:
  int64_t axis_;
  bool scalar_ = false;
  int64_t scalar_index_ = 0;
};

class GatherElements final : public OpKernel {
 public:
  explicit GatherElements(const NodeInfo& info) : axis_(info.get_int("axis", 0)) {}
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor& x = in[0];
    const int64_t a = norm_axis(axis_, x.dim());
    if (in[1].dim() != x.dim()) runtime_fail("indices must have the rank of data");
    out[0] = at::gather(x, a, wrap_indices(in[1], x.size(a)));
  }

 private:
  int64_t axis_;
};

class Pad final : public OpKernel {
 public:
  enum class Mode { kConstant, kReflect, kEdge };
  explicit Pad(const NodeInfo& info) {
    std::string mode = info.get_string("mode", "constant");
    if (mode == "constant") mode_ = Mode::kConstant;
    else if (mode == "reflect") mode_ = Mode::kReflect;
    else if (mode == "edge") mode_ = Mode::kEdge;
    else if (mode == "wrap") info.unsupported("mode 'wrap' (opset 19) is not implemented");
    else info.fail("attribute 'mode' must be constant, reflect or edge, got '" + mode + "'");
    if (info.opset() < 11) {
      if (!info.has_attr("pads")) info.fail("attribute 'pads' is required");
      pads_.set(info.get_ints("pads"));
      value_ = info.get_float("value", 0.0f);
    } else {
      pads_.from_input(info, 1);
      if (!pads_.present()) info.fail("input 'pads' is required");
      if (info.has_input(3)) {
        if (info.opset() < 18) info.fail("input 'axes' needs opset 18");
        axes_.from_input(info, 3);
      }
      value_input_ = info.has_input(2);
    }
  }

  void compute(const Tensors& in, Tensors& out) override {
    at::Tensor y = in[0];
    const int64_t r = y.dim();
    const std::vector<int64_t>* pads_p = &pads_.get(in);
    if (axes_.present()) {  // opset 18: pads lists [begins, ends] of the given axes only
      const auto& axes = axes_.get(in);
      const size_t n = axes.size();
      if (pads_p->size() != 2 * n)
        runtime_fail(detail::concat("pads has ", pads_p->size(), " entries for ", n, " axes"));
      full_pads_.assign(2 * r, 0);
      for (size_t i = 0; i < n; ++i) {
        const int64_t a = norm_axis(axes[i], r);
        full_pads_[a] = (*pads_p)[i];
        full_pads_[a + r] = (*pads_p)[i + n];
      }
      pads_p = &full_pads_;
    }
    const auto& pads = *pads_p;
    if (static_cast<int64_t>(pads.size()) != 2 * r)
      runtime_fail(detail::concat("pads has ", pads.size(), " entries for a rank-", r, " input"));
    // Negative pads crop.
    for (int64_t a = 0; a < r; ++a) {
      int64_t b = std::min<int64_t>(pads[a], 0), e = std::min<int64_t>(pads[a + r], 0);
      if (b == 0 && e == 0) continue;
      int64_t len = y.size(a) + b + e;
      if (len < 0) runtime_fail(detail::concat("negative pads crop more than axis ", a, " holds"));
      y = y.narrow(a, -b, len);
    }
    if (mode_ == Mode::kConstant) {
      std::vector<int64_t> tpad;  // libtorch order: last axis first
      bool any = false;
      for (int64_t a = r - 1; a >= 0; --a) {
        tpad.push_back(std::max<int64_t>(pads[a], 0));
        tpad.push_back(std::max<int64_t>(pads[a + r], 0));
        any = any || tpad.end()[-1] || tpad.end()[-2];
      }
      if (!any) {
        out[0] = y;
        return;
      }
      at::Scalar value = value_;
      if (value_input_ && in[2].defined() && in[2].numel() > 0) value = in[2].reshape({-1})[0].item();
      if (y.numel() == 0) {  // constant_pad_nd rejects empty inputs; the result is all padding
        std::vector<int64_t> shape(y.sizes().begin(), y.sizes().end());
        for (int64_t a = 0; a < r; ++a)
          shape[a] += std::max<int64_t>(pads[a], 0) + std::max<int64_t>(pads[a + r], 0);
        out[0] = at::full(shape, value, y.options());
        return;
      }
      out[0] = at::constant_pad_nd(y, tpad, value);
      return;
    }
    for (int64_t a = 0; a < r; ++a) {
      int64_t b = std::max<int64_t>(pads[a], 0), e = std::max<int64_t>(pads[a + r], 0);
      if (b == 0 && e == 0) continue;
      const int64_t n = y.size(a);
      if (n == 0) runtime_fail(detail::concat("cannot pad the empty axis ", a, " in this mode"));
      std::vector<int64_t> idx(n + b + e);
      const int64_t period = 2 * (n - 1);
      for (int64_t j = 0; j < n + b + e; ++j) {
        int64_t p = j - b;
        if (mode_ == Mode::kEdge || n == 1) {
          p = std::clamp<int64_t>(p, 0, n - 1);
        } else {  // mirror without repeating the edge, periodically for pads longer than the axis
          p = ((p % period) + period) % period;
          if (p >= n) p = period - p;
        }
        idx[j] = p;
      }
      y = y.index_select(a, at::tensor(idx, at::kLong));
    }
    out[0] = y;
  }

 private:
  Mode mode_ = Mode::kConstant;
  IntList pads_, axes_;
  std::vector<int64_t> full_pads_;
  double value_ = 0;
  bool value_input_ = false;
};

}  // namespace

const std::vector<OpRow>& index_rows() {
  static const std::vector<OpRow> rows = {
      {"Slice", 1, 18, make_kernel<Slice>},
      {"Gather", 1, 18, make_kernel<Gather>},
      {"GatherElements", 11, 18, make_kernel<GatherElements>},
      {"Pad", 2, 18, make_kernel<Pad>},
  };
  return rows;
}

}  // namespace shape_ops
}  // namespace mixq
