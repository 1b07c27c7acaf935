// Index-range operators: Slice (opset 1 attributes or opset 10+ inputs, negative steps), Split
// (sizes from the input, the attribute, or equal parts), ConstantOfShape and Range. Exported
// models build masks, positions and channel splits (ShuffleNet, recurrent exports, FPN heads) with
// them, mostly from run-time shapes, so they read their index inputs at run time.
#include <algorithm>
#include <cmath>

#include "mixq/error.h"
#include "runtime/ops.h"

namespace mixq::rt {

namespace {

std::vector<int64_t> ints_in(const Op* op, const std::vector<const Tensor*>& in, size_t k, const char* what) {
  RT_CHECK(in.size() > k && in[k] && in[k]->dtype == ElemType::kInt64, op, what, " must be an int64 tensor");
  return in[k]->i;
}

// Copies the box start[d] + step[d] * j (j < count[d]) of x into a new tensor of shape count.
Tensor gather_box(const Tensor& x, const std::vector<int64_t>& start, const std::vector<int64_t>& step,
                  const std::vector<int64_t>& count) {
  const bool f = x.dtype == ElemType::kFloat32;
  Tensor y = f ? Tensor::floats(count) : Tensor::ints(count);
  const size_t r = count.size();
  const int64_t n = y.numel();
  if (n == 0) return y;
  std::vector<int64_t> stride(r, 1);
  for (size_t d = r; d-- > 1;) stride[d - 1] = stride[d] * x.shape[d];
  std::vector<int64_t> idx(r, 0);
  int64_t src = 0;
  for (size_t d = 0; d < r; ++d) src += start[d] * stride[d];
  for (int64_t o = 0; o < n; ++o) {
    if (f) y.f[static_cast<size_t>(o)] = x.f[static_cast<size_t>(src)];
    else y.i[static_cast<size_t>(o)] = x.i[static_cast<size_t>(src)];
    for (size_t d = r; d-- > 0;) {
      ++idx[d];
      src += step[d] * stride[d];
      if (idx[d] < count[d]) break;
      src -= step[d] * stride[d] * count[d];
      idx[d] = 0;
    }
  }
  return y;
}

class SliceOp : public Op {
 public:
  bool from_attrs = false;  // opset < 10
  std::vector<int64_t> a_starts, a_ends, a_axes;
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx&) override {
    RT_CHECK(!in.empty() && in[0], this, "needs data");
    const Tensor& x = *in[0];
    const int64_t r = x.rank();
    std::vector<int64_t> starts = a_starts, ends = a_ends, axes = a_axes, steps;
    if (!from_attrs) {
      starts = ints_in(this, in, 1, "starts");
      ends = ints_in(this, in, 2, "ends");
      if (in.size() > 3 && in[3]) axes = ints_in(this, in, 3, "axes");
      if (in.size() > 4 && in[4]) steps = ints_in(this, in, 4, "steps");
    }
    if (axes.empty())
      for (size_t k = 0; k < starts.size(); ++k) axes.push_back(static_cast<int64_t>(k));
    if (steps.empty()) steps.assign(starts.size(), 1);
    RT_CHECK(starts.size() == ends.size() && axes.size() == starts.size() && steps.size() == starts.size(), this,
             "starts, ends, axes and steps differ in length");
    std::vector<int64_t> start(static_cast<size_t>(r), 0), step(static_cast<size_t>(r), 1), count = x.shape;
    for (size_t k = 0; k < starts.size(); ++k) {
      const int64_t a = axes[k] < 0 ? axes[k] + r : axes[k];
      RT_CHECK(a >= 0 && a < r, this, "axis ", axes[k], " outside rank ", r);
      const int64_t dim = x.shape[static_cast<size_t>(a)], st = steps[k];
      RT_CHECK(st != 0, this, "a step of 0");
      int64_t b = starts[k], e = ends[k];
      if (b < 0) b += dim;
      if (e < 0) e += dim;
      if (st > 0) {
        b = std::clamp<int64_t>(b, 0, dim);
        e = std::clamp<int64_t>(e, 0, dim);
      } else {
        b = std::clamp<int64_t>(b, 0, dim - 1);
        e = std::clamp<int64_t>(e, -1, dim - 1);
      }
      const int64_t n = st > 0 ? (e - b + st - 1) / st : (b - e + (-st) - 1) / (-st);
      start[static_cast<size_t>(a)] = b;
      step[static_cast<size_t>(a)] = st;
      count[static_cast<size_t>(a)] = std::max<int64_t>(0, n);
    }
    out[0] = gather_box(x, start, step, count);
  }
};

class SplitOp : public Op {
 public:
  int64_t axis = 0;
  std::vector<int64_t> attr_split;
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx&) override {
    RT_CHECK(!in.empty() && in[0], this, "needs data");
    const Tensor& x = *in[0];
    const int64_t r = x.rank(), a = axis < 0 ? axis + r : axis;
    RT_CHECK(a >= 0 && a < r, this, "axis ", axis, " outside rank ", r);
    const int64_t dim = x.shape[static_cast<size_t>(a)], parts = static_cast<int64_t>(out.size());
    std::vector<int64_t> sizes = attr_split;
    if (in.size() > 1 && in[1]) sizes = ints_in(this, in, 1, "split");
    if (sizes.empty()) {  // equal parts; the last one smaller when they do not divide (opset 18)
      const int64_t each = (dim + parts - 1) / parts;
      for (int64_t k = 0; k < parts; ++k) sizes.push_back(std::max<int64_t>(0, std::min(each, dim - k * each)));
    }
    int64_t total = 0;
    for (int64_t s : sizes) total += s;
    RT_CHECK(static_cast<int64_t>(sizes.size()) == parts && total == dim, this, "split sizes do not add up to ", dim,
             " in ", parts, " outputs");
    std::vector<int64_t> start(static_cast<size_t>(r), 0), step(static_cast<size_t>(r), 1);
    for (int64_t k = 0, at = 0; k < parts; at += sizes[static_cast<size_t>(k)], ++k) {
      std::vector<int64_t> count = x.shape;
      start[static_cast<size_t>(a)] = at;
      count[static_cast<size_t>(a)] = sizes[static_cast<size_t>(k)];
      out[static_cast<size_t>(k)] = gather_box(x, start, step, count);
    }
  }
};

class ConstantOfShapeOp : public Op {
 public:
  bool is_float = true;
  float fv = 0;
  int64_t iv = 0;
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx&) override {
    std::vector<int64_t> shape = ints_in(this, in, 0, "shape");
    for (int64_t d : shape) RT_CHECK(d >= 0, this, "negative dimension ", d);
    Tensor y = is_float ? Tensor::floats(shape) : Tensor::ints(shape);
    if (is_float) std::fill(y.f.begin(), y.f.end(), fv);
    else std::fill(y.i.begin(), y.i.end(), iv);
    out[0] = std::move(y);
  }
};

class RangeOp : public Op {
 public:
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx&) override {
    RT_CHECK(in.size() == 3 && in[0] && in[1] && in[2], this, "needs start, limit and delta");
    for (int k = 0; k < 3; ++k) RT_CHECK(in[k]->numel() == 1, this, "start, limit and delta must be scalars");
    if (in[0]->dtype == ElemType::kInt64) {
      const int64_t s = in[0]->i[0], l = in[1]->i[0], d = in[2]->i[0];
      RT_CHECK(d != 0, this, "delta 0");
      const int64_t n = std::max<int64_t>(0, d > 0 ? (l - s + d - 1) / d : (s - l + (-d) - 1) / (-d));
      Tensor y = Tensor::ints({n});
      for (int64_t k = 0; k < n; ++k) y.i[static_cast<size_t>(k)] = s + k * d;
      out[0] = std::move(y);
    } else {
      const float s = in[0]->f[0], l = in[1]->f[0], d = in[2]->f[0];
      RT_CHECK(d != 0, this, "delta 0");
      const int64_t n = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((double(l) - s) / d)));
      Tensor y = Tensor::floats({n});
      for (int64_t k = 0; k < n; ++k) y.f[static_cast<size_t>(k)] = s + static_cast<float>(k) * d;
      out[0] = std::move(y);
    }
  }
};

std::unique_ptr<Op> make_slice(const BuildCtx& c) {
  auto op = std::make_unique<SliceOp>();
  if (c.node.attr("starts")) {
    op->from_attrs = true;
    op->a_starts = c.ints_attr("starts");
    op->a_ends = c.ints_attr("ends");
    op->a_axes = c.ints_attr("axes");
  }
  return op;
}
std::unique_ptr<Op> make_split(const BuildCtx& c) {
  auto op = std::make_unique<SplitOp>();
  op->axis = c.int_attr("axis", 0);
  op->attr_split = c.ints_attr("split");
  return op;
}
std::unique_ptr<Op> make_constant_of_shape(const BuildCtx& c) {
  auto op = std::make_unique<ConstantOfShapeOp>();
  if (const pack::Attr* v = c.node.attr("value")) {
    MIXQ_CHECK(v->type == pack::Attr::kTensor, ErrorKind::kInvalidModel, c.desc, ": 'value' must be a tensor");
    auto it = c.consts.find(v->s);
    MIXQ_CHECK(it != c.consts.end() && it->second->numel() == 1, ErrorKind::kInvalidModel, c.desc,
               ": 'value' must hold one element");
    op->is_float = it->second->dtype == pack::ElemType::kFloat32;
    if (op->is_float) op->fv = it->second->f[0];
    else op->iv = it->second->i[0];
  }
  return op;
}
std::unique_ptr<Op> make_range(const BuildCtx&) { return std::make_unique<RangeOp>(); }

}  // namespace

const std::vector<OpRow>& slice_rows() {
  static const std::vector<OpRow> rows = {
      {"Slice", make_slice, 1},
      {"Split", make_split, 1},
      {"ConstantOfShape", make_constant_of_shape, 1},
      {"Range", make_range, 3},
  };
  return rows;
}

}  // namespace mixq::rt
