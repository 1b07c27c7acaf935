// More indexing ops: GatherND, ScatterND, ScatterElements (and the deprecated Scatter), OneHot,
// NonZero, TopK, CumSum, Trilu, Compress, ReverseSequence, Unique.
//
// Scatters copy their data input and write into the copy (out of place for autograd). Their
// `reduction` attribute (opset 16: add, mul; opset 18: max, min) maps onto libtorch's
// scatter_reduce / index_reduce with the existing values included, as ONNX specifies.
#include <ATen/ATen.h>

#include <algorithm>

#include "exec/ops/shape_internal.h"

namespace mixq {
namespace shape_ops {
namespace {

using Tensors = std::vector<at::Tensor>;

at::Tensor wrap_negative(const at::Tensor& idx, int64_t dim) {
  at::Tensor i = idx.scalar_type() == at::kLong ? idx : idx.to(at::kLong);
  return at::where(i < 0, i + dim, i);
}

void check_range(const at::Tensor& idx, int64_t dim, const char* what) {
  if (idx.numel() == 0) return;
  if (idx.min().item<int64_t>() < 0 || idx.max().item<int64_t>() >= dim)
    runtime_fail(detail::concat(what, " are out of range for a dimension of ", dim));
}

enum class Reduction { kNone, kAdd, kMul, kMax, kMin };

Reduction parse_reduction(const NodeInfo& info) {
  if (info.opset() < 16) return Reduction::kNone;
  const std::string r = info.get_string("reduction", "none");
  if (r == "none") return Reduction::kNone;
  if (r == "add") return Reduction::kAdd;
  if (r == "mul") return Reduction::kMul;
  if (info.opset() >= 18 && r == "max") return Reduction::kMax;
  if (info.opset() >= 18 && r == "min") return Reduction::kMin;
  info.fail("attribute 'reduction' must be none, add, mul" +
            std::string(info.opset() >= 18 ? ", max or min" : "") + ", got '" + r + "'");
}

const char* reduce_name(Reduction r) {
  switch (r) {
    case Reduction::kMul: return "prod";
    case Reduction::kMax: return "amax";
    case Reduction::kMin: return "amin";
    default: return "sum";
  }
}

// The rows of data's first k dims that indices [..., k] address, as flat row numbers [M].
at::Tensor flat_rows(const at::Tensor& data, const at::Tensor& indices, int64_t first, int64_t k) {
  at::Tensor idx = indices.to(at::kLong).reshape({-1, k});
  at::Tensor lin = at::zeros({idx.size(0)}, idx.options());
  for (int64_t j = 0; j < k; ++j) {
    const int64_t d = data.size(first + j);
    at::Tensor c = wrap_negative(idx.select(1, j), d);
    check_range(c, d, "indices");
    lin = lin * d + c;
  }
  return lin;
}

class GatherND final : public OpKernel {
 public:
  explicit GatherND(const NodeInfo& info) : batch_dims_(info.opset() >= 12 ? info.get_int("batch_dims", 0) : 0) {
    if (batch_dims_ < 0) info.fail("attribute 'batch_dims' must be non-negative");
  }
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor &data = in[0], &indices = in[1];
    const int64_t b = batch_dims_, q = indices.dim();
    if (q < 1 || b >= q || b >= data.dim()) runtime_fail("indices rank is too small for batch_dims");
    const int64_t k = indices.size(q - 1);
    if (k < 1 || b + k > data.dim()) runtime_fail(detail::concat("indices' last dimension ", k,
                                                                 " is out of range for data rank ", data.dim()));
    int64_t nb = 1;
    for (int64_t d = 0; d < b; ++d) {
      if (data.size(d) != indices.size(d)) runtime_fail("data and indices differ in a batch dimension");
      nb *= data.size(d);
    }
    // data -> [nb, rows, rest...]; indices -> [nb, m, k]
    std::vector<int64_t> rest(data.sizes().begin() + b + k, data.sizes().end());
    int64_t rows = 1;
    for (int64_t d = b; d < b + k; ++d) rows *= data.size(d);
    std::vector<int64_t> dshape = {nb, rows};
    dshape.insert(dshape.end(), rest.begin(), rest.end());
    at::Tensor d2 = data.reshape(dshape);
    at::Tensor lin = flat_rows(data, indices, b, k).reshape({nb, -1});  // [nb, m]
    at::Tensor bidx = at::arange(nb, lin.options()).unsqueeze(1);
    c10::List<c10::optional<at::Tensor>> ix;
    ix.push_back(bidx);
    ix.push_back(lin);
    at::Tensor g = at::index(d2, ix);  // [nb, m, rest...]
    std::vector<int64_t> oshape(indices.sizes().begin(), indices.sizes().end() - 1);
    oshape.insert(oshape.end(), rest.begin(), rest.end());
    out[0] = g.reshape(oshape);
  }

 private:
  int64_t batch_dims_;
};

class ScatterND final : public OpKernel {
 public:
  explicit ScatterND(const NodeInfo& info) : red_(parse_reduction(info)) {}
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor &data = in[0], &indices = in[1], &updates = in[2];
    const int64_t q = indices.dim();
    if (q < 1) runtime_fail("indices must have rank >= 1");
    const int64_t k = indices.size(q - 1);
    if (k < 1 || k > data.dim()) runtime_fail("indices' last dimension is out of range for data");
    std::vector<int64_t> rest(data.sizes().begin() + k, data.sizes().end());
    std::vector<int64_t> dshape = {-1}, ushape = {-1};
    dshape.insert(dshape.end(), rest.begin(), rest.end());
    ushape.insert(ushape.end(), rest.begin(), rest.end());
    at::Tensor lin = flat_rows(data, indices, 0, k);
    at::Tensor u = updates.reshape(ushape);
    if (u.size(0) != lin.size(0)) runtime_fail("updates do not match indices");
    at::Tensor y = data.clone().reshape(dshape);
    if (red_ == Reduction::kNone) y = y.index_copy(0, lin, u);
    else if (red_ == Reduction::kAdd) y = y.index_add(0, lin, u);
    else y = y.index_reduce(0, lin, u, reduce_name(red_), /*include_self=*/true);
    out[0] = y.reshape(data.sizes());
  }

 private:
  Reduction red_;
};

class ScatterElements final : public OpKernel {
 public:
  explicit ScatterElements(const NodeInfo& info) : axis_(info.get_int("axis", 0)), red_(parse_reduction(info)) {}
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor &data = in[0], &updates = in[2];
    const int64_t a = norm_axis(axis_, data.dim());
    if (in[1].dim() != data.dim() || !in[1].sizes().equals(updates.sizes()))
      runtime_fail("indices and updates must have the same shape and data's rank");
    at::Tensor idx = wrap_negative(in[1], data.size(a));
    check_range(idx, data.size(a), "indices");
    if (red_ == Reduction::kNone) out[0] = at::scatter(data, a, idx, updates);
    else if (red_ == Reduction::kAdd) out[0] = at::scatter_add(data, a, idx, updates);
    else out[0] = at::scatter_reduce(data, a, idx, updates, reduce_name(red_), /*include_self=*/true);
  }

 private:
  int64_t axis_;
  Reduction red_;
};

// indices, depth, values = [off, on]; the one-hot axis is inserted at `axis`. Negative indices
// count from depth; indices out of range give an all-off row.
class OneHot final : public OpKernel {
 public:
  explicit OneHot(const NodeInfo& info) : axis_(info.get_int("axis", -1)) {}
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor &indices = in[0], &values = in[2];
    if (in[1].numel() != 1) runtime_fail("depth must hold one value");
    if (values.numel() != 2) runtime_fail("values must hold two values [off, on]");
    const int64_t depth = static_cast<int64_t>(in[1].to(at::kDouble).item<double>());
    if (depth < 1) runtime_fail("depth must be positive");
    const int64_t r = indices.dim() + 1;
    const int64_t a = norm_axis(axis_, r);
    at::Tensor idx = indices.is_floating_point() ? indices.trunc().to(at::kLong) : indices.to(at::kLong);
    idx = at::where(idx < 0, idx + depth, idx);
    at::Tensor hot = idx.unsqueeze(-1) == at::arange(depth, idx.options());  // [..., depth]
    hot = hot.movedim(-1, a);
    at::Tensor v = values.reshape({2});
    out[0] = at::where(hot, v[1], v[0]);
  }

 private:
  int64_t axis_;
};

class NonZero final : public OpKernel {
 public:
  explicit NonZero(const NodeInfo&) {}
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor& x = in[0];
    if (x.dim() == 0) {  // numpy treats a scalar as a 1-element vector
      out[0] = at::nonzero(x.reshape({1})).t().contiguous();
      return;
    }
    out[0] = at::nonzero(x).t().contiguous();
  }
};

// Values and int64 indices of the k largest (smallest) elements along axis. Ties go to the lower
// index, which a stable sort guarantees (at::topk does not).
class TopK final : public OpKernel {
 public:
  explicit TopK(const NodeInfo& info)
      : axis_(info.get_int("axis", -1)),
        largest_(info.opset() < 11 || info.get_int("largest", 1) != 0) {
    if (info.opset() < 10) k_.set({info.req_int("k")});
    else k_.from_input(info, 1);
    if (!k_.present()) info.fail("input 'K' is required");
  }
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor& x = in[0];
    const auto& kv = k_.get(in);
    if (kv.size() != 1) runtime_fail("K must hold one value");
    const int64_t a = norm_axis(axis_, x.dim());
    const int64_t k = kv[0];
    if (k < 0 || k > x.size(a))
      runtime_fail(detail::concat("K = ", k, " is out of range for an axis of ", x.size(a)));
    auto sorted = at::sort(x, /*stable=*/true, a, /*descending=*/largest_);
    out[0] = std::get<0>(sorted).narrow(a, 0, k);
    if (out.size() > 1) out[1] = std::get<1>(sorted).narrow(a, 0, k);
  }

 private:
  int64_t axis_;
  bool largest_;
  IntList k_;
};

class CumSum final : public OpKernel {
 public:
  explicit CumSum(const NodeInfo& info)
      : exclusive_(info.get_int("exclusive", 0) != 0), reverse_(info.get_int("reverse", 0) != 0) {
    axis_.from_input(info, 1);
    if (!axis_.present()) info.fail("input 'axis' is required");
  }
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor& x = in[0];
    const auto& av = axis_.get(in);
    if (av.size() != 1) runtime_fail("axis must hold one value");
    const int64_t a = norm_axis(av[0], x.dim());
    at::Tensor y = reverse_ ? x.flip(a) : x;
    y = at::cumsum(y, a, x.scalar_type());
    if (exclusive_ && y.size(a) > 0) {  // shift by one along the axis, a zero first
      at::Tensor zero = at::zeros_like(y.narrow(a, 0, 1));
      y = at::cat({zero, y.narrow(a, 0, y.size(a) - 1)}, a);
    }
    out[0] = reverse_ ? y.flip(a) : y;
  }

 private:
  bool exclusive_, reverse_;
  IntList axis_;
};

class Trilu final : public OpKernel {
 public:
  explicit Trilu(const NodeInfo& info) : upper_(info.get_int("upper", 1) != 0) { k_.from_input(info, 1); }
  void compute(const Tensors& in, Tensors& out) override {
    int64_t k = 0;
    if (k_.present()) {
      const auto& kv = k_.get(in);
      if (kv.size() != 1) runtime_fail("k must hold one value");
      k = kv[0];
    }
    if (in[0].dim() < 2) runtime_fail("input must have rank >= 2");
    out[0] = upper_ ? at::triu(in[0], k) : at::tril(in[0], k);
  }

 private:
  bool upper_;
  IntList k_;
};

// The slices along axis (of the flattened input without one) whose condition is true; a condition
// shorter than the axis drops the rest.
class Compress final : public OpKernel {
 public:
  explicit Compress(const NodeInfo& info) : has_axis_(info.has_attr("axis")), axis_(info.get_int("axis", 0)) {}
  void compute(const Tensors& in, Tensors& out) override {
    at::Tensor x = has_axis_ ? in[0] : in[0].reshape({-1});
    const int64_t a = has_axis_ ? norm_axis(axis_, x.dim()) : 0;
    at::Tensor cond = in[1].reshape({-1}).to(at::kBool);
    if (cond.size(0) > x.size(a)) runtime_fail("condition is longer than the axis");
    out[0] = x.index_select(a, at::nonzero(cond).reshape({-1}));
  }

 private:
  bool has_axis_;
  int64_t axis_;
};

// Reverses the first sequence_lens[b] elements along time_axis of every batch entry b.
class ReverseSequence final : public OpKernel {
 public:
  explicit ReverseSequence(const NodeInfo& info)
      : time_axis_(info.get_int("time_axis", 0)), batch_axis_(info.get_int("batch_axis", 1)) {
    if (!((time_axis_ == 0 && batch_axis_ == 1) || (time_axis_ == 1 && batch_axis_ == 0)))
      info.fail("attributes 'time_axis' and 'batch_axis' must be 0 and 1 in some order");
  }
  void compute(const Tensors& in, Tensors& out) override {
    at::Tensor x = in[0];
    if (x.dim() < 2) runtime_fail("input must have rank >= 2");
    if (time_axis_ == 1) x = x.transpose(0, 1);  // [T, B, ...]
    const int64_t T = x.size(0), B = x.size(1);
    at::Tensor l = in[1].to(at::kLong).reshape({-1});
    if (l.size(0) != B) runtime_fail("sequence_lens must have one entry per batch element");
    at::Tensor t = at::arange(T, l.options()).unsqueeze(1);
    at::Tensor idx = at::where(t < l.unsqueeze(0), l.unsqueeze(0) - 1 - t, t.expand({T, B}));
    std::vector<int64_t> ishape = {T, B};
    for (int64_t d = 2; d < x.dim(); ++d) ishape.push_back(1);
    at::Tensor y = x.gather(0, idx.reshape(ishape).expand(x.sizes()));
    out[0] = time_axis_ == 1 ? y.transpose(0, 1) : y;
  }

 private:
  int64_t time_axis_, batch_axis_;
};

// Unique elements (or slices along axis) of X: Y, the index of each one's first occurrence, the
// inverse map from X to Y, and the counts. sorted = 1: ascending (slices lexicographically, as
// numpy.unique); sorted = 0: in order of first occurrence.
class Unique final : public OpKernel {
 public:
  explicit Unique(const NodeInfo& info)
      : has_axis_(info.has_attr("axis")), axis_(info.get_int("axis", 0)), sorted_(info.get_int("sorted", 1) != 0) {}
  void compute(const Tensors& in, Tensors& out) override {
    at::Tensor x = has_axis_ ? in[0] : in[0].reshape({-1});
    const int64_t a = has_axis_ ? norm_axis(axis_, x.dim()) : 0;
    at::Tensor y, inverse, counts;
    if (has_axis_) std::tie(y, inverse, counts) = at::unique_dim(x, a, /*sorted=*/true, true, true);
    else std::tie(y, inverse, counts) = at::_unique2(x, /*sorted=*/true, true, true);
    inverse = inverse.reshape({-1});
    const int64_t n = x.size(a), k = y.size(a);
    at::Tensor first = at::full({k}, n, inverse.options())
                           .scatter_reduce(0, inverse, at::arange(n, inverse.options()), "amin", true);
    if (!sorted_) {
      at::Tensor perm = first.argsort();   // unique ids in order of first occurrence
      at::Tensor rank = perm.argsort();    // old unique id -> new position
      y = y.index_select(a, perm);
      first = first.index_select(0, perm);
      counts = counts.index_select(0, perm);
      inverse = rank.index_select(0, inverse);
    }
    out[0] = y;
    if (out.size() > 1) out[1] = first;
    if (out.size() > 2) out[2] = inverse;
    if (out.size() > 3) out[3] = counts;
  }

 private:
  bool has_axis_;
  int64_t axis_;
  bool sorted_;
};

}  // namespace

const std::vector<OpRow>& index_more_rows() {
  static const std::vector<OpRow> rows = {
      {"GatherND", 11, 18, make_kernel<GatherND>},
      {"ScatterND", 11, 18, make_kernel<ScatterND>},
      {"ScatterElements", 11, 18, make_kernel<ScatterElements>},
      {"Scatter", 9, 10, make_kernel<ScatterElements>},
      {"OneHot", 9, 18, make_kernel<OneHot>},
      {"NonZero", 9, 18, make_kernel<NonZero>},
      {"TopK", 1, 18, make_kernel<TopK>},
      {"CumSum", 11, 18, make_kernel<CumSum>},
      {"Trilu", 14, 18, make_kernel<Trilu>},
      {"Compress", 9, 18, make_kernel<Compress>},
      {"ReverseSequence", 10, 18, make_kernel<ReverseSequence>},
      {"Unique", 11, 18, make_kernel<Unique>},
  };
  return rows;
}

}  // namespace shape_ops
}  // namespace mixq
