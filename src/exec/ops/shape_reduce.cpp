// Reductions (ReduceSum/Mean/Max/Min/Prod/L1/L2/SumSquare/LogSum/LogSumExp) and ArgMax/ArgMin,
// opset 1-18.
#include <ATen/ATen.h>

#include <algorithm>

#include "exec/ops/shape_internal.h"

namespace mixq {
namespace shape_ops {
namespace {

using Tensors = std::vector<at::Tensor>;

enum class Red { kSum, kMean, kMax, kMin, kProd, kL1, kL2, kSumSquare, kLogSum, kLogSumExp };

template <Red R>
class Reduce final : public OpKernel {
 public:
  explicit Reduce(const NodeInfo& info) : keepdims_(info.get_int("keepdims", 1) != 0) {
    // ReduceSum took its axes as an input from opset 13; the others keep the attribute until 17
    // and take the input from opset 18.
    if ((R == Red::kSum && info.opset() >= 13) || info.opset() >= 18) {
      if (info.has_attr("axes")) info.fail("takes 'axes' as an input at this opset, not an attribute");
      axes_.from_input(info, 1);
      noop_ = info.get_int("noop_with_empty_axes", 0) != 0;
    } else if (info.has_attr("axes")) {
      axes_.set(info.get_ints("axes"));
    }
  }

  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor& x = in[0];
    const int64_t r = x.dim();
    const auto& axes = axes_.present() ? axes_.get(in) : empty_;
    dims_.clear();
    if (axes.empty()) {
      if (noop_) {
        out[0] = x;
        return;
      }
      for (int64_t d = 0; d < r; ++d) dims_.push_back(d);
    } else {
      for (int64_t ax : axes) dims_.push_back(norm_axis(ax, r));
      std::sort(dims_.begin(), dims_.end());
      dims_.erase(std::unique(dims_.begin(), dims_.end()), dims_.end());
    }
    out[0] = reduce(x);
  }

 private:
  // dims_ is empty only for a rank-0 input; libtorch then reduces its single element, which is
  // what ONNX asks, so scalars need no special case (except logsumexp, which rejects it).
  at::Tensor reduce(const at::Tensor& x) const {
    const at::ScalarType dt = x.scalar_type();
    const bool fp = at::isFloatingType(dt);
    switch (R) {
      case Red::kSum:
        return at::sum(x, dims_, keepdims_, dt);
      case Red::kLogSum:
        return at::sum(x, dims_, keepdims_, dt).log();
      case Red::kMean:
        if (fp) return at::mean(x, dims_, keepdims_);
        return at::div(at::sum(x, dims_, keepdims_, at::kLong), count(x), "trunc").to(dt);
      case Red::kMax:
        return at::amax(x, dims_, keepdims_);
      case Red::kMin:
        return at::amin(x, dims_, keepdims_);
      case Red::kProd: {
        at::Tensor y = x;  // at::prod takes a single dim
        for (int64_t d : dims_) y = at::prod(y, d, /*keepdim=*/true, dt);
        return keepdims_ ? y : squeeze_dims(y);
      }
      case Red::kL1:
        return at::sum(x.abs(), dims_, keepdims_, dt);
      case Red::kL2:
        if (fp) return at::sum(x.square(), dims_, keepdims_).sqrt();
        return at::sum(x.to(at::kDouble).square(), dims_, keepdims_).sqrt().to(dt);
      case Red::kSumSquare:
        return at::sum(x.square(), dims_, keepdims_, dt);
      case Red::kLogSumExp:
        if (dims_.empty()) return x;
        if (fp) return at::logsumexp(x, dims_, keepdims_);
        return at::logsumexp(x.to(at::kDouble), dims_, keepdims_).to(dt);
    }
    return x;
  }

  int64_t count(const at::Tensor& x) const {
    int64_t c = 1;
    for (int64_t d : dims_) c *= x.size(d);
    return c;
  }

  at::Tensor squeeze_dims(const at::Tensor& y) const {
    std::vector<int64_t> shape;
    for (int64_t d = 0, k = 0; d < y.dim(); ++d) {
      if (k < static_cast<int64_t>(dims_.size()) && dims_[k] == d) {
        ++k;
        continue;
      }
      shape.push_back(y.size(d));
    }
    return y.reshape(shape);
  }

  bool keepdims_;
  bool noop_ = false;
  IntList axes_;
  const std::vector<int64_t> empty_;
  std::vector<int64_t> dims_;
};

template <bool kMax>
class ArgExtreme final : public OpKernel {
 public:
  explicit ArgExtreme(const NodeInfo& info)
      : axis_(info.get_int("axis", 0)),
        keepdims_(info.get_int("keepdims", 1) != 0),
        last_(info.opset() >= 12 && info.get_int("select_last_index", 0) != 0) {}

  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor& x = in[0];
    const int64_t a = norm_axis(axis_, x.dim());
    if (!last_) {  // libtorch returns the first extreme index on ties, as ONNX asks
      out[0] = kMax ? x.argmax(a, keepdims_) : x.argmin(a, keepdims_);
      return;
    }
    at::Tensor f = x.flip(a);
    at::Tensor i = kMax ? f.argmax(a, keepdims_) : f.argmin(a, keepdims_);
    out[0] = (x.size(a) - 1) - i;
  }

 private:
  int64_t axis_;
  bool keepdims_;
  bool last_;
};

}  // namespace

const std::vector<OpRow>& reduce_rows() {
  static const std::vector<OpRow> rows = {
      {"ReduceSum", 1, 18, make_kernel<Reduce<Red::kSum>>},
      {"ReduceMean", 1, 18, make_kernel<Reduce<Red::kMean>>},
      {"ReduceMax", 1, 18, make_kernel<Reduce<Red::kMax>>},
      {"ReduceMin", 1, 18, make_kernel<Reduce<Red::kMin>>},
      {"ReduceProd", 1, 18, make_kernel<Reduce<Red::kProd>>},
      {"ReduceL1", 1, 18, make_kernel<Reduce<Red::kL1>>},
      {"ReduceL2", 1, 18, make_kernel<Reduce<Red::kL2>>},
      {"ReduceSumSquare", 1, 18, make_kernel<Reduce<Red::kSumSquare>>},
      {"ReduceLogSum", 1, 18, make_kernel<Reduce<Red::kLogSum>>},
      {"ReduceLogSumExp", 1, 18, make_kernel<Reduce<Red::kLogSumExp>>},
      {"ArgMax", 1, 18, make_kernel<ArgExtreme<true>>},
      {"ArgMin", 1, 18, make_kernel<ArgExtreme<false>>},
  };
  return rows;
}

}  // namespace shape_ops
}  // namespace mixq
