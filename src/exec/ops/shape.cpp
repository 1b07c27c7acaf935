// Shape-manipulating ops: Flatten, Reshape, Transpose, Concat, Split, Squeeze, Unsqueeze, Expand,
// Tile, Range. The table function also gathers the rows of shape_index.cpp, shape_reduce.cpp,
// shape_resize.cpp and shape_index_more.cpp.
//
// Reshape-like ops return views of their input where libtorch can (no copy for batch-1 inference).
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "exec/ops/ops.h"
#include "exec/ops/shape_internal.h"

namespace mixq {
namespace shape_ops {

std::vector<int64_t> int_values(const at::Tensor& t) {
  MIXQ_CHECK(!at::isFloatingType(t.scalar_type()) && t.scalar_type() != at::kBool,
             ErrorKind::kRuntime, "expected an integer tensor, got ", t.scalar_type());
  at::Tensor c = t.scalar_type() == at::kLong ? t.contiguous() : t.to(at::kLong).contiguous();
  const int64_t* p = c.data_ptr<int64_t>();
  return std::vector<int64_t>(p, p + c.numel());
}

std::vector<double> float_values(const at::Tensor& t) {
  at::Tensor c = t.to(at::kDouble).contiguous();
  const double* p = c.data_ptr<double>();
  return std::vector<double>(p, p + c.numel());
}

void runtime_fail(const std::string& msg) { throw Error(ErrorKind::kRuntime, msg); }

int64_t norm_axis(int64_t axis, int64_t rank, const char* what) {
  if (axis < -rank || axis >= std::max<int64_t>(rank, 1))
    runtime_fail(detail::concat(what, " ", axis, " is out of range for a rank-", rank, " input"));
  return axis < 0 ? axis + rank : axis;
}

void IntList::from_input(const NodeInfo& info, size_t index) {
  index_ = index;
  present_ = info.has_input(index);
  constant_ = false;
  if (const at::Tensor* c = info.constant_input(index)) {
    constant_ = true;
    values_ = int_values(*c);
  }
}

}  // namespace shape_ops

namespace {

using namespace shape_ops;
using Tensors = std::vector<at::Tensor>;

class Flatten final : public OpKernel {
 public:
  explicit Flatten(const NodeInfo& info) : axis_(info.get_int("axis", 1)) {}
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor& x = in[0];
    int64_t r = x.dim();
    int64_t a = axis_ < 0 ? axis_ + r : axis_;
    if (a < 0 || a > r) runtime_fail(detail::concat("axis ", axis_, " is out of range for rank ", r));
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < r; ++d) (d < a ? outer : inner) *= x.size(d);
    out[0] = x.reshape({outer, inner});
  }

 private:
  int64_t axis_;
};

class Reshape final : public OpKernel {
 public:
  explicit Reshape(const NodeInfo& info) {
    if (info.opset() < 5) {
      shape_.set(info.get_ints("shape"));
    } else {
      shape_.from_input(info, 1);
      if (!shape_.present()) info.fail("input 'shape' is required");
    }
    allowzero_ = info.opset() >= 14 && info.get_int("allowzero", 0) != 0;
  }
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor& x = in[0];
    const auto& shape = shape_.get(in);
    dims_.assign(shape.begin(), shape.end());
    int64_t infer = -1, known = 1;
    for (size_t i = 0; i < dims_.size(); ++i) {
      if (dims_[i] == 0 && !allowzero_) {
        if (static_cast<int64_t>(i) >= x.dim())
          runtime_fail(detail::concat("shape[", i, "] is 0 (copy) but the input has rank ", x.dim()));
        dims_[i] = x.size(static_cast<int64_t>(i));
      }
      if (dims_[i] == -1) {
        if (infer >= 0) runtime_fail("shape has more than one -1");
        infer = static_cast<int64_t>(i);
      } else if (dims_[i] < 0) {
        runtime_fail(detail::concat("shape[", i, "] = ", dims_[i], " is invalid"));
      } else {
        known *= dims_[i];
      }
    }
    if (infer >= 0) {
      if (known == 0 || x.numel() % known != 0)
        runtime_fail(detail::concat("cannot infer the -1 dimension of shape ", at::IntArrayRef(shape),
                                    " for ", x.numel(), " elements"));
      dims_[infer] = x.numel() / known;
    }
    out[0] = x.reshape(dims_);
  }

 private:
  IntList shape_;
  bool allowzero_ = false;
  std::vector<int64_t> dims_;
};

class Transpose final : public OpKernel {
 public:
  explicit Transpose(const NodeInfo& info) : perm_(info.get_ints("perm")) {
    std::vector<int64_t> sorted = perm_;
    std::sort(sorted.begin(), sorted.end());
    for (size_t i = 0; i < sorted.size(); ++i)
      if (sorted[i] != static_cast<int64_t>(i))
        info.fail("attribute 'perm' must be a permutation of 0..rank-1");
  }
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor& x = in[0];
    if (perm_.empty()) {
      std::vector<int64_t> rev(x.dim());
      for (int64_t i = 0; i < x.dim(); ++i) rev[i] = x.dim() - 1 - i;
      out[0] = x.permute(rev);
      return;
    }
    if (static_cast<int64_t>(perm_.size()) != x.dim())
      runtime_fail(detail::concat("perm has ", perm_.size(), " entries for a rank-", x.dim(), " input"));
    out[0] = x.permute(perm_);
  }

 private:
  std::vector<int64_t> perm_;
};

class Concat final : public OpKernel {
 public:
  explicit Concat(const NodeInfo& info)
      : axis_(info.opset() < 4 ? info.get_int("axis", 1) : info.req_int("axis")) {
    if (info.num_inputs() == 0) info.fail("needs at least one input");
  }
  void compute(const Tensors& in, Tensors& out) override {
    int64_t a = norm_axis(axis_, in[0].dim());
    if (in.size() == 1) {
      out[0] = in[0];
      return;
    }
    out[0] = at::cat(in, a);
  }

 private:
  int64_t axis_;
};

class Split final : public OpKernel {
 public:
  explicit Split(const NodeInfo& info) : axis_(info.get_int("axis", 0)) {
    if (info.opset() >= 13 || (info.opset() < 2 && info.has_input(1))) {
      split_.from_input(info, 1);
    } else if (info.has_attr("split")) {
      split_.set(info.get_ints("split"));
    }
    if (info.opset() >= 18 && info.has_attr("num_outputs")) {
      // Opset 18: equal parts (the last one smaller), instead of the 'split' input.
      const int64_t n = info.get_int("num_outputs", 0);
      if (split_.present()) info.fail("takes either input 'split' or attribute 'num_outputs', not both");
      if (n < 1 || n != static_cast<int64_t>(info.num_outputs()))
        info.fail(detail::concat("attribute 'num_outputs' is ", n, " but the node has ",
                                 info.num_outputs(), " outputs"));
    }
    for (size_t i = 0; i < info.num_outputs(); ++i) has_out_.push_back(info.has_output(i));
  }
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor& x = in[0];
    int64_t a = norm_axis(axis_, x.dim());
    int64_t dim = x.size(a);
    int64_t n = static_cast<int64_t>(out.size());
    std::vector<int64_t> sizes;
    if (split_.present()) sizes = split_.get(in);
    if (!sizes.empty()) {
      int64_t total = 0;
      for (int64_t s : sizes) total += s;
      if (static_cast<int64_t>(sizes.size()) != n || total != dim)
        runtime_fail(detail::concat("split ", at::IntArrayRef(sizes), " does not divide a dimension of ",
                                    dim, " into ", n, " outputs"));
    } else {
      // Equal parts; when the dimension does not divide evenly, the last part is the smaller one
      // (the rule opset 18 made explicit).
      int64_t chunk = (dim + n - 1) / n;
      int64_t last = dim - chunk * (n - 1);
      if (last < 0)
        runtime_fail(detail::concat("cannot split a dimension of ", dim, " into ", n, " parts"));
      sizes.assign(n, chunk);
      sizes.back() = last;
    }
    auto parts = x.split_with_sizes(sizes, a);
    for (int64_t i = 0; i < n; ++i)
      if (has_out_[i]) out[i] = parts[i];
  }

 private:
  int64_t axis_;
  IntList split_;
  std::vector<bool> has_out_;
};

class Squeeze final : public OpKernel {
 public:
  explicit Squeeze(const NodeInfo& info) {
    if (info.opset() >= 13) axes_.from_input(info, 1);
    else if (info.has_attr("axes")) axes_.set(info.get_ints("axes"));
  }
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor& x = in[0];
    const int64_t r = x.dim();
    drop_.assign(r, false);
    const auto& axes = axes_.present() ? axes_.get(in) : empty_;
    if (axes.empty()) {
      for (int64_t d = 0; d < r; ++d) drop_[d] = x.size(d) == 1;
    } else {
      for (int64_t ax : axes) {
        int64_t a = norm_axis(ax, r);
        if (x.size(a) != 1)
          runtime_fail(detail::concat("cannot squeeze axis ", ax, " of size ", x.size(a)));
        drop_[a] = true;
      }
    }
    dims_.clear();
    for (int64_t d = 0; d < r; ++d)
      if (!drop_[d]) dims_.push_back(x.size(d));
    out[0] = x.reshape(dims_);
  }

 private:
  IntList axes_;
  const std::vector<int64_t> empty_;
  std::vector<bool> drop_;
  std::vector<int64_t> dims_;
};

class Unsqueeze final : public OpKernel {
 public:
  explicit Unsqueeze(const NodeInfo& info) {
    if (info.opset() >= 13) {
      axes_.from_input(info, 1);
      if (!axes_.present()) info.fail("input 'axes' is required");
    } else {
      axes_.set(info.get_ints("axes"));
    }
  }
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor& x = in[0];
    const auto& axes = axes_.get(in);
    const int64_t r = x.dim() + static_cast<int64_t>(axes.size());
    ins_.assign(r, false);
    for (int64_t ax : axes) {
      int64_t a = norm_axis(ax, r);
      if (ins_[a]) runtime_fail(detail::concat("axes ", at::IntArrayRef(axes), " has duplicates"));
      ins_[a] = true;
    }
    dims_.clear();
    int64_t src = 0;
    for (int64_t d = 0; d < r; ++d) dims_.push_back(ins_[d] ? 1 : x.size(src++));
    out[0] = x.reshape(dims_);
  }

 private:
  IntList axes_;
  std::vector<bool> ins_;
  std::vector<int64_t> dims_;
};

class Expand final : public OpKernel {
 public:
  explicit Expand(const NodeInfo& info) { shape_.from_input(info, 1); }
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor& x = in[0];
    const auto& shape = shape_.get(in);
    const int64_t xr = x.dim(), sr = static_cast<int64_t>(shape.size());
    const int64_t r = std::max(xr, sr);
    dims_.assign(r, 1);
    for (int64_t i = 0; i < r; ++i) {
      int64_t a = i - (r - xr) >= 0 ? x.size(i - (r - xr)) : 1;
      int64_t b = i - (r - sr) >= 0 ? shape[i - (r - sr)] : 1;
      if (a != b && a != 1 && b != 1)
        runtime_fail(detail::concat("cannot broadcast input shape ", x.sizes(), " to ",
                                    at::IntArrayRef(shape)));
      dims_[i] = a == 1 ? b : a;
    }
    out[0] = x.expand(dims_);
  }

 private:
  IntList shape_;
  std::vector<int64_t> dims_;
};

class Tile final : public OpKernel {
 public:
  explicit Tile(const NodeInfo& info) {
    repeats_.from_input(info, 1);
  }
  void compute(const Tensors& in, Tensors& out) override {
    const auto& reps = repeats_.get(in);
    if (static_cast<int64_t>(reps.size()) != in[0].dim())
      runtime_fail(detail::concat("repeats has ", reps.size(), " entries for a rank-", in[0].dim(),
                                  " input"));
    out[0] = in[0].repeat(reps);
  }

 private:
  IntList repeats_;
};

class Range final : public OpKernel {
 public:
  explicit Range(const NodeInfo&) {}
  void compute(const Tensors& in, Tensors& out) override {
    const at::ScalarType dt = in[0].scalar_type();
    if (at::isFloatingType(dt)) {
      double start = in[0].item<double>(), limit = in[1].item<double>(), delta = in[2].item<double>();
      if (delta == 0) runtime_fail("delta is 0");
      int64_t n = std::max<int64_t>(static_cast<int64_t>(std::ceil((limit - start) / delta)), 0);
      out[0] = (at::arange(n, at::kDouble) * delta + start).to(dt);
    } else {
      int64_t start = in[0].item<int64_t>(), limit = in[1].item<int64_t>(), delta = in[2].item<int64_t>();
      if (delta == 0) runtime_fail("delta is 0");
      // ceil((limit - start) / delta) in exact integer arithmetic.
      int64_t num = limit - start;
      int64_t n = num / delta + ((num % delta != 0 && ((num > 0) == (delta > 0))) ? 1 : 0);
      n = std::max<int64_t>(n, 0);
      out[0] = (at::arange(n, at::kLong) * delta + start).to(dt);
    }
  }
};

}  // namespace

const std::vector<OpRow>& shape_op_rows() {
  static const std::vector<OpRow> rows = [] {
    std::vector<OpRow> r = {
        {"Flatten", 1, 18, make_kernel<Flatten>},
        {"Reshape", 1, 18, make_kernel<Reshape>},
        {"Transpose", 1, 18, make_kernel<Transpose>},
        {"Concat", 1, 18, make_kernel<Concat>},
        {"Split", 1, 18, make_kernel<Split>},
        {"Squeeze", 1, 18, make_kernel<Squeeze>},
        {"Unsqueeze", 1, 18, make_kernel<Unsqueeze>},
        {"Expand", 8, 18, make_kernel<Expand>},
        {"Tile", 6, 18, make_kernel<Tile>},
        {"Range", 11, 18, make_kernel<Range>},
    };
    for (const auto* part : {&shape_ops::index_rows(), &shape_ops::reduce_rows(),
                             &shape_ops::resize_rows(), &shape_ops::index_more_rows()})
      r.insert(r.end(), part->begin(), part->end());
    return r;
  }();
  return rows;
}

}  // namespace mixq
