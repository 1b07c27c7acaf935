// Comparison and selection operators on broadcast operands: Equal / Less / Greater (bool results
// held as int64 0 / 1, the runtime's two element types being float32 and int64), Where, the
// variadic Max / Min, Expand, and the max reductions ReduceMax / GlobalMaxPool. Attention masks and one-hot encodings in exported transformers
// are made of these.
#include <algorithm>
#include <cmath>

#include "mixq/error.h"
#include "runtime/broadcast.h"
#include "runtime/ops.h"

namespace mixq::rt {

namespace {

double at_d(const Tensor& t, int64_t i) {
  return t.dtype == ElemType::kFloat32 ? double(t.f[static_cast<size_t>(i)]) : double(t.i[static_cast<size_t>(i)]);
}

enum class Cmp { kEqual, kLess, kGreater };

template <Cmp K>
class CompareOp : public Op {
 public:
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx&) override {
    RT_CHECK(in.size() == 2 && in[0] && in[1], this, "needs two inputs");
    const Tensor &a = *in[0], &b = *in[1];
    const std::vector<int64_t> shape = broadcast_shape(this, a.shape, b.shape);
    const auto sa = bstrides(a.shape, shape), sb = bstrides(b.shape, shape);
    Tensor y = Tensor::ints(shape);
    const bool ints = a.dtype == ElemType::kInt64 && b.dtype == ElemType::kInt64;
    for_broadcast(shape, sa, sb, [&](int64_t o, int64_t ia, int64_t ib) {
      bool r;
      if (ints) {  // exact beyond 2^53
        const int64_t x = a.i[static_cast<size_t>(ia)], z = b.i[static_cast<size_t>(ib)];
        r = K == Cmp::kEqual ? x == z : K == Cmp::kLess ? x < z : x > z;
      } else {
        const double x = at_d(a, ia), z = at_d(b, ib);
        r = K == Cmp::kEqual ? x == z : K == Cmp::kLess ? x < z : x > z;
      }
      y.i[static_cast<size_t>(o)] = r;
    });
    out[0] = std::move(y);
  }
};

class WhereOp : public Op {
 public:
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx&) override {
    RT_CHECK(in.size() == 3 && in[0] && in[1] && in[2], this, "needs condition, X and Y");
    const Tensor &c = *in[0], &x = *in[1], &y = *in[2];
    RT_CHECK(x.dtype == y.dtype, this, "X and Y differ in element type");
    const std::vector<int64_t> shape = broadcast_shape(this, broadcast_shape(this, c.shape, x.shape), y.shape);
    const auto sc = bstrides(c.shape, shape), sx = bstrides(x.shape, shape), sy = bstrides(y.shape, shape);
    const bool f = x.dtype == ElemType::kFloat32;
    Tensor r = f ? Tensor::floats(shape) : Tensor::ints(shape);
    // Walk the output index by index: three operands, so the flat offsets are kept per operand.
    const size_t rank = shape.size();
    std::vector<int64_t> idx(rank, 0);
    int64_t oc = 0, ox = 0, oy = 0;
    const int64_t n = r.numel();
    for (int64_t o = 0; o < n; ++o) {
      const bool take_x = at_d(c, oc) != 0.0;
      if (f) r.f[static_cast<size_t>(o)] = take_x ? x.f[static_cast<size_t>(ox)] : y.f[static_cast<size_t>(oy)];
      else r.i[static_cast<size_t>(o)] = take_x ? x.i[static_cast<size_t>(ox)] : y.i[static_cast<size_t>(oy)];
      for (size_t d = rank; d-- > 0;) {
        ++idx[d];
        oc += sc[d], ox += sx[d], oy += sy[d];
        if (idx[d] < shape[d]) break;
        oc -= sc[d] * shape[d], ox -= sx[d] * shape[d], oy -= sy[d] * shape[d];
        idx[d] = 0;
      }
    }
    out[0] = std::move(r);
  }
};

template <bool kMax>
class ExtremumOp : public Op {
 public:
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx&) override {
    RT_CHECK(!in.empty() && in[0], this, "needs an input");
    Tensor acc = *in[0];
    for (size_t k = 1; k < in.size(); ++k) {
      RT_CHECK(in[k] && in[k]->dtype == acc.dtype, this, "inputs differ in element type");
      const Tensor& b = *in[k];
      const std::vector<int64_t> shape = broadcast_shape(this, acc.shape, b.shape);
      const auto sa = bstrides(acc.shape, shape), sb = bstrides(b.shape, shape);
      Tensor y = acc.dtype == ElemType::kFloat32 ? Tensor::floats(shape) : Tensor::ints(shape);
      for_broadcast(shape, sa, sb, [&](int64_t o, int64_t ia, int64_t ib) {
        if (y.dtype == ElemType::kFloat32) {
          const float u = acc.f[static_cast<size_t>(ia)], v = b.f[static_cast<size_t>(ib)];
          // NaN propagates, as numpy's maximum / minimum.
          y.f[static_cast<size_t>(o)] = std::isnan(u) || std::isnan(v) ? NAN : kMax ? std::max(u, v) : std::min(u, v);
        } else {
          const int64_t u = acc.i[static_cast<size_t>(ia)], v = b.i[static_cast<size_t>(ib)];
          y.i[static_cast<size_t>(o)] = kMax ? std::max(u, v) : std::min(u, v);
        }
      });
      acc = std::move(y);
    }
    out[0] = std::move(acc);
  }
};

class ExpandOp : public Op {
 public:
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx&) override {
    RT_CHECK(in.size() == 2 && in[0] && in[1] && in[1]->dtype == ElemType::kInt64, this,
             "needs data and an int64 shape");
    const Tensor& x = *in[0];
    const std::vector<int64_t> shape = broadcast_shape(this, x.shape, in[1]->i);
    const auto sx = bstrides(x.shape, shape);
    const std::vector<int64_t> zero(shape.size(), 0);
    Tensor y = x.dtype == ElemType::kFloat32 ? Tensor::floats(shape) : Tensor::ints(shape);
    for_broadcast(shape, sx, zero, [&](int64_t o, int64_t ia, int64_t) {
      if (y.dtype == ElemType::kFloat32) y.f[static_cast<size_t>(o)] = x.f[static_cast<size_t>(ia)];
      else y.i[static_cast<size_t>(o)] = x.i[static_cast<size_t>(ia)];
    });
    out[0] = std::move(y);
  }
};

// ReduceMax (axes as attribute, or input 1 from opset 18) and GlobalMaxPool (every axis after
// the first two, kept as 1s): the largest element, NaN if any is NaN.
class MaxReduceOp : public Op {
 public:
  bool global = false;
  std::vector<int64_t> axes;
  int64_t keepdims = 1, noop_empty = 0;
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx&) override {
    RT_CHECK(!in.empty() && in[0], this, "needs an input");
    const Tensor& x = *in[0];
    const int64_t r = x.rank();
    std::vector<int64_t> ax = axes;
    if (global) {
      RT_CHECK(r >= 3, this, "needs an [N, C, ...] input");
      ax.clear();
      for (int64_t d = 2; d < r; ++d) ax.push_back(d);
    } else if (in.size() > 1 && in[1]) {
      RT_CHECK(in[1]->dtype == ElemType::kInt64, this, "axes must be int64");
      ax = in[1]->i;
    }
    std::vector<bool> red(static_cast<size_t>(r), ax.empty() && !noop_empty);
    for (int64_t a : ax) {
      const int64_t n = a < 0 ? a + r : a;
      RT_CHECK(n >= 0 && n < r, this, "axis ", a, " outside rank ", r);
      red[static_cast<size_t>(n)] = true;
    }
    std::vector<int64_t> shape, ost(static_cast<size_t>(r), 0);
    for (int64_t d = 0; d < r; ++d) {
      if (!red[static_cast<size_t>(d)]) shape.push_back(x.shape[static_cast<size_t>(d)]);
      else if (keepdims || global) shape.push_back(1);
    }
    int64_t acc = 1;
    for (int64_t d = r - 1; d >= 0; --d)
      if (!red[static_cast<size_t>(d)]) ost[static_cast<size_t>(d)] = acc, acc *= x.shape[static_cast<size_t>(d)];
    const bool f = x.dtype == ElemType::kFloat32;
    Tensor y = f ? Tensor::floats(shape) : Tensor::ints(shape);
    std::vector<char> seen(static_cast<size_t>(y.numel()), 0);
    std::vector<int64_t> idx(static_cast<size_t>(r), 0);
    int64_t o = 0;
    for (int64_t i = 0, n = x.numel(); i < n; ++i) {
      const size_t oi = static_cast<size_t>(o);
      if (f) {
        const float v = x.f[static_cast<size_t>(i)];
        float& m = y.f[oi];
        if (!seen[oi]) m = v;
        else if (!std::isnan(m) && (std::isnan(v) || v > m)) m = v;
      } else {
        const int64_t v = x.i[static_cast<size_t>(i)];
        if (!seen[oi] || v > y.i[oi]) y.i[oi] = v;
      }
      seen[oi] = 1;
      for (int64_t d = r - 1; d >= 0; --d) {
        const size_t k = static_cast<size_t>(d);
        ++idx[k];
        o += ost[k];
        if (idx[k] < x.shape[k]) break;
        o -= ost[k] * x.shape[k];
        idx[k] = 0;
      }
    }
    out[0] = std::move(y);
  }
};

std::unique_ptr<Op> make_reduce_max(const BuildCtx& c) {
  auto op = std::make_unique<MaxReduceOp>();
  op->axes = c.ints_attr("axes");
  op->keepdims = c.int_attr("keepdims", 1);
  op->noop_empty = c.int_attr("noop_with_empty_axes", 0);
  return op;
}
std::unique_ptr<Op> make_global_max_pool(const BuildCtx&) {
  auto op = std::make_unique<MaxReduceOp>();
  op->global = true;
  return op;
}

template <typename T>
std::unique_ptr<Op> make(const BuildCtx&) {
  return std::make_unique<T>();
}

}  // namespace

const std::vector<OpRow>& select_rows() {
  static const std::vector<OpRow> rows = {
      {"Equal", make<CompareOp<Cmp::kEqual>>, 2},
      {"Less", make<CompareOp<Cmp::kLess>>, 2},
      {"Greater", make<CompareOp<Cmp::kGreater>>, 2},
      {"Where", make<WhereOp>, 3},
      {"Max", make<ExtremumOp<true>>, 1},
      {"Min", make<ExtremumOp<false>>, 1},
      {"Expand", make<ExpandOp>, 2},
      {"ReduceMax", make_reduce_max, 1},
      {"GlobalMaxPool", make_global_max_pool, 1},
  };
  return rows;
}

}  // namespace mixq::rt
