// Shape and reduction operators: Reshape, Flatten, Transpose, Squeeze/Unsqueeze, ReduceMean/Sum,
// GlobalAveragePool, Gather (with on-the-fly dequantization of a quantized embedding table).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "mixq/error.h"
#include "pack/bitpack.h"
#include "runtime/ops.h"
#include "runtime/row_reduce.h"

namespace mixq::rt {

namespace {

int64_t norm_axis(const Op* op, int64_t a, int64_t r) {
  const int64_t x = a < 0 ? a + r : a;
  RT_CHECK(x >= 0 && x < r, op, "axis ", a, " outside rank ", r);
  return x;
}

std::vector<int64_t> ints_of(const Op* op, const Tensor* t, const char* what) {
  RT_CHECK(t && t->dtype == ElemType::kInt64, op, what, " must be an int64 tensor");
  return t->i;
}

// x with another shape (the same values, codes and layout): the buffers moved from the donor when x
// dies here, so a Reshape / Flatten / Squeeze costs no copy of its input, else a copy.
Tensor with_shape(const Tensor& x, std::vector<int64_t> shape, const RunCtx& ctx) {
  Tensor y = ctx.donor ? std::move(*ctx.donor) : x;
  y.shape = std::move(shape);
  return y;
}

class ReshapeOp : public Op {
 public:
  int64_t allowzero = 0;
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx& ctx) override {
    RT_CHECK(in.size() >= 2 && in[0], this, "needs data and shape");
    std::vector<int64_t> s = ints_of(this, in[1], "shape");
    const Tensor& x = *in[0];
    int64_t known = 1, infer = -1;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == 0 && !allowzero) {
        RT_CHECK(i < x.shape.size(), this, "shape ", shape_str(s), " copies dim ", i, " of ", shape_str(x.shape));
        s[i] = x.shape[i];
      }
      if (s[i] == -1) {
        RT_CHECK(infer < 0, this, "shape ", shape_str(s), " has two -1");
        infer = static_cast<int64_t>(i);
      } else {
        RT_CHECK(s[i] >= 0, this, "shape ", shape_str(s), " has a negative dim");
        // The shape comes from the file (or a computed value): its product can overflow int64
        // (found by fuzzing), and then no reshape matches anyway.
        RT_CHECK(!__builtin_mul_overflow(known, s[i], &known), this, "shape ", shape_str(s),
                 " has more elements than int64 can count");
      }
    }
    if (infer >= 0) {
      RT_CHECK(known > 0 && x.numel() % known == 0, this, "cannot reshape ", shape_str(x.shape), " to ", shape_str(s));
      s[infer] = x.numel() / known;
    }
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    RT_CHECK(n == x.numel(), this, "cannot reshape ", shape_str(x.shape), " to ", shape_str(s));
    out[0] = with_shape(x, s, ctx);
  }
};

class FlattenOp : public Op {
 public:
  int64_t axis = 1;
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx& ctx) override {
    const Tensor& x = *in[0];
    const int64_t r = x.rank(), a = axis < 0 ? axis + r : axis;
    RT_CHECK(a >= 0 && a <= r, this, "axis ", axis, " outside rank ", r);
    int64_t o = 1, i = 1;
    for (int64_t d = 0; d < r; ++d) (d < a ? o : i) *= x.shape[d];
    out[0] = with_shape(x, {o, i}, ctx);
  }
};

class TransposeOp : public Op {
 public:
  std::vector<int64_t> perm;
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx& ctx) override {
    const Tensor& x = *in[0];
    const int64_t r = x.rank();
    std::vector<int64_t> p = perm;
    if (p.empty()) for (int64_t d = r - 1; d >= 0; --d) p.push_back(d);
    RT_CHECK(static_cast<int64_t>(p.size()) == r, this, "perm of size ", p.size(), " for rank ", r);
    std::vector<int64_t> shape(r), xs(r, 1), ys;
    for (int64_t d = r - 2; d >= 0; --d) xs[d] = xs[d + 1] * x.shape[d + 1];
    std::vector<bool> seen(r, false);
    for (int64_t d = 0; d < r; ++d) {
      RT_CHECK(p[d] >= 0 && p[d] < r && !seen[p[d]], this, "perm ", shape_str(p), " is not a permutation");
      seen[p[d]] = true;
      shape[d] = x.shape[p[d]];
    }
    Tensor y = x.dtype == ElemType::kFloat32 ? output_floats(shape, ctx) : Tensor::ints(shape);  // (all written)
    const int64_t n = y.numel();
    if (n == 0) {
      out[0] = std::move(y);
      return;
    }
    std::vector<int64_t> st(r);
    for (int64_t d = 0; d < r; ++d) st[d] = xs[p[d]];
    // Output rows (the last output dim) one at a time: a strided gather, or a plain copy when the
    // last dim stays last; the row's source offset advances like an odometer over the other dims.
    const int64_t len = r ? shape[r - 1] : 1, step = r ? st[r - 1] : 1;
    std::vector<int64_t> idx(r, 0);
    int64_t src = 0;
    for (int64_t o = 0; o < n; o += len) {
      if (x.dtype == ElemType::kFloat32) {
        const float* s0 = x.f.data() + src;
        float* d0 = y.f.data() + o;
        if (step == 1) std::copy(s0, s0 + len, d0);
        else for (int64_t j = 0; j < len; ++j) d0[j] = s0[j * step];
      } else {
        for (int64_t j = 0; j < len; ++j) y.i[o + j] = x.i[src + j * step];
      }
      for (int64_t d = r - 2; d >= 0; --d) {
        ++idx[d];
        src += st[d];
        if (idx[d] < shape[d]) break;
        src -= st[d] * shape[d];
        idx[d] = 0;
      }
    }
    out[0] = std::move(y);
  }
};

class UnsqueezeOp : public Op {
 public:
  bool squeeze = false;
  std::vector<int64_t> axes;  // attribute (opset < 13); else input 1
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx& ctx) override {
    const Tensor& x = *in[0];
    std::vector<int64_t> ax = axes;
    if (in.size() > 1 && in[1]) ax = ints_of(this, in[1], "axes");
    std::vector<int64_t> s = x.shape;
    if (squeeze) {
      std::vector<int64_t> r;
      const int64_t rk = x.rank();
      std::vector<bool> drop(rk, false);
      for (int64_t a : ax) drop[norm_axis(this, a, rk)] = true;
      for (int64_t d = 0; d < rk; ++d)
        if (!(ax.empty() ? s[d] == 1 : drop[d])) r.push_back(s[d]);
      out[0] = with_shape(x, r, ctx);
    } else {
      const int64_t rk = x.rank() + static_cast<int64_t>(ax.size());
      std::vector<int64_t> na;
      for (int64_t a : ax) na.push_back(norm_axis(this, a, rk));
      std::sort(na.begin(), na.end());
      for (int64_t a : na) s.insert(s.begin() + a, 1);
      out[0] = with_shape(x, s, ctx);
    }
  }
};

template <bool kMean>
class ReduceOp : public Op {
 public:
  std::vector<int64_t> axes;
  int64_t keepdims = 1, noop_empty = 0;
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx&) override {
    const Tensor& x = *in[0];
    RT_CHECK(x.dtype == ElemType::kFloat32, this, "needs a float32 input");
    std::vector<int64_t> ax = axes;
    if (in.size() > 1 && in[1]) ax = ints_of(this, in[1], "axes");
    const int64_t r = x.rank();
    std::vector<bool> red(r, ax.empty() && !noop_empty);
    for (int64_t a : ax) red[norm_axis(this, a, r)] = true;
    std::vector<int64_t> shape, kept;
    int64_t count = 1;
    for (int64_t d = 0; d < r; ++d) {
      if (red[d]) { count *= x.shape[d]; if (keepdims) shape.push_back(1); }
      else shape.push_back(x.shape[d]);
    }
    Tensor y = Tensor::floats(shape);
    // Fast path: the reduced axes form one contiguous block [r0, r1): y[o][i] = sum_r x[o][r][i].
    int64_t r0 = -1, r1 = -1;
    for (int64_t d = 0; d < r; ++d)
      if (red[d]) { if (r0 < 0) r0 = d; r1 = d + 1; }
    bool block = r0 >= 0;
    for (int64_t d = std::max<int64_t>(r0, 0); block && d < r1; ++d) block = red[d];
    if (block) {
      int64_t outer = 1, inner = 1;
      for (int64_t d = 0; d < r0; ++d) outer *= x.shape[d];
      for (int64_t d = r1; d < r; ++d) inner *= x.shape[d];
      if (inner == 1) {  // along the last axes (LayerNorm): contiguous rows (row_reduce.h)
        for (int64_t o = 0; o < outer; ++o) y.f[o] = row_sum8(x.f.data() + o * count, count);
      } else {
        for (int64_t o = 0; o < outer; ++o) {
          float* yo = y.f.data() + o * inner;
          for (int64_t k = 0; k < count; ++k) {
            const float* xo = x.f.data() + (o * count + k) * inner;
            for (int64_t i = 0; i < inner; ++i) yo[i] += xo[i];
          }
        }
      }
      if (kMean && count > 0)
        for (float& v : y.f) v /= static_cast<float>(count);
      out[0] = std::move(y);
      return;
    }
    // Output index of each input element: strides of the kept dims.
    std::vector<int64_t> ost(r, 0);
    int64_t acc = 1;
    for (int64_t d = r - 1; d >= 0; --d)
      if (!red[d]) { ost[d] = acc; acc *= x.shape[d]; }
    std::vector<int64_t> idx(r, 0);
    int64_t o = 0;
    const int64_t n = x.numel();
    for (int64_t i = 0; i < n; ++i) {
      y.f[o] += x.f[i];
      for (int64_t d = r - 1; d >= 0; --d) {
        ++idx[d];
        o += ost[d];
        if (idx[d] < x.shape[d]) break;
        o -= ost[d] * x.shape[d];
        idx[d] = 0;
      }
    }
    if (kMean && count > 0)
      for (float& v : y.f) v /= static_cast<float>(count);
    out[0] = std::move(y);
  }
};

class GlobalAvgPoolOp : public Op {
 public:
  bool may_take_nhwc(size_t idx) const override { return idx == 0; }
  bool takes_nhwc(size_t idx, const std::vector<const Tensor*>& in) const override {
    return idx == 0 && in[0] && !in[0]->is_codes() && in[0]->dtype == ElemType::kFloat32;
  }
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx& ctx) override {
    const Tensor& x = *in[0];
    RT_CHECK(x.rank() >= 3 && x.dtype == ElemType::kFloat32, this, "needs a float [N,C,...] input, got ",
             shape_str(x.shape));
    std::vector<int64_t> shape(x.shape.begin(), x.shape.begin() + 2);
    int64_t hw = 1;
    for (int64_t d = 2; d < x.rank(); ++d) { hw *= x.shape[d]; shape.push_back(1); }
    Tensor y = output_floats(shape, ctx);  // (every element written)
    if (x.nhwc) {
      // Channels-last: the same per-channel sums in the same order (pixel by pixel), so both layouts
      // give the same bits; the pixel loop outside keeps the reads contiguous.
      const int64_t C = x.shape[1];
      std::vector<float> s(static_cast<size_t>(C));
      for (int64_t b = 0; b < x.shape[0]; ++b) {
        std::fill(s.begin(), s.end(), 0.0f);
        const float* p = x.f.data() + b * hw * C;
        for (int64_t i = 0; i < hw; ++i)
          for (int64_t c = 0; c < C; ++c) s[c] += p[i * C + c];
        for (int64_t c = 0; c < C; ++c) y.f[b * C + c] = s[c] / static_cast<float>(hw);
      }
      out[0] = std::move(y);
      return;
    }
    for (int64_t c = 0; c < x.shape[0] * x.shape[1]; ++c) {
      float s = 0;
      for (int64_t i = 0; i < hw; ++i) s += x.f[c * hw + i];
      y.f[c] = s / static_cast<float>(hw);
    }
    out[0] = std::move(y);
  }
};

// Gather along `axis`. A quantized table (an embedding layer) stays packed: gathered rows are
// dequantized on the fly when the parameters run along the gathered axis 0 (per-tensor or
// per-row), else the table is dequantized once at load.
class GatherOp : public Op {
 public:
  int64_t axis = 0;
  const pack::QWeight* q = nullptr;  // packed rows (axis 0, not per-group)
  Tensor table;                      // dequantized at load when q cannot be used directly
  bool has_table = false;
  std::vector<uint16_t> codes_;      // one unpacked row

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx&) override {
    const Tensor* data = has_table ? &table : in[0];
    const Tensor& idx = *in[1];
    RT_CHECK(idx.dtype == ElemType::kInt64, this, "indices must be integers");
    const std::vector<int64_t> dshape = q ? q->dims : data->shape;
    const int64_t r = static_cast<int64_t>(dshape.size()), a = norm_axis(this, axis, r);
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < a; ++d) outer *= dshape[d];
    for (int64_t d = a + 1; d < r; ++d) inner *= dshape[d];
    const int64_t n = dshape[a], ni = idx.numel();
    std::vector<int64_t> shape(dshape.begin(), dshape.begin() + a);
    shape.insert(shape.end(), idx.shape.begin(), idx.shape.end());
    shape.insert(shape.end(), dshape.begin() + a + 1, dshape.end());
    const bool fl = q || data->dtype == ElemType::kFloat32;
    Tensor y = fl ? Tensor::floats(shape) : Tensor::ints(shape);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < ni; ++j) {
        int64_t k = idx.i[j];
        if (k < 0) k += n;
        RT_CHECK(k >= 0 && k < n, this, "index ", idx.i[j], " outside [", -n, ", ", n - 1, "]");
        const int64_t src = (o * n + k) * inner, dst = (o * ni + j) * inner;
        if (q) {
          const int64_t p = q->granularity == pack::Gran::kPerTensor ? 0 : k;
          if (q->form) {  // a row-wise table (quant/rowwise_ref.h): s * q + offset, or a centroid
            codes_.resize(static_cast<size_t>(inner));
            for (int64_t t = 0; t < inner; ++t) codes_[t] = pack::unpack_one(q->packed.data(), src + t, q->bits);
            if (q->form == 1) {
              const float s = q->scales[p], off = q->offsets[p];
              for (int64_t t = 0; t < inner; ++t) y.f[dst + t] = s * static_cast<float>(codes_[t]) + off;
            } else {
              const float* c = q->codebook.data() + (p << q->bits);
              for (int64_t t = 0; t < inner; ++t) y.f[dst + t] = c[codes_[t]];
            }
            continue;
          }
          const float s = q->scales[p], z = static_cast<float>(q->zero_points[p]), qmin = static_cast<float>(q->qmin());
          if (src * q->bits % 8 == 0) {  // the row starts on a byte: unpack it in one go
            codes_.resize(static_cast<size_t>(inner));
            pack::unpack_bits(q->packed.data() + src * q->bits / 8, inner, q->bits, codes_.data());
            for (int64_t t = 0; t < inner; ++t) y.f[dst + t] = s * (static_cast<float>(codes_[t]) + qmin - z);
          } else {
            for (int64_t t = 0; t < inner; ++t)
              y.f[dst + t] = s * (static_cast<float>(pack::unpack_one(q->packed.data(), src + t, q->bits)) + qmin - z);
          }
        } else if (fl) {
          std::copy(data->f.begin() + src, data->f.begin() + src + inner, y.f.begin() + dst);
        } else {
          std::copy(data->i.begin() + src, data->i.begin() + src + inner, y.i.begin() + dst);
        }
      }
    out[0] = std::move(y);
  }
};

std::unique_ptr<Op> make_reshape(const BuildCtx& c) {
  auto op = std::make_unique<ReshapeOp>();
  op->allowzero = c.int_attr("allowzero", 0);
  return op;
}
std::unique_ptr<Op> make_flatten(const BuildCtx& c) {
  auto op = std::make_unique<FlattenOp>();
  op->axis = c.int_attr("axis", 1);
  return op;
}
std::unique_ptr<Op> make_transpose(const BuildCtx& c) {
  auto op = std::make_unique<TransposeOp>();
  op->perm = c.ints_attr("perm");
  return op;
}
template <bool kSqueeze>
std::unique_ptr<Op> make_unsqueeze(const BuildCtx& c) {
  auto op = std::make_unique<UnsqueezeOp>();
  op->squeeze = kSqueeze;
  op->axes = c.ints_attr("axes");
  return op;
}
template <bool kMean>
std::unique_ptr<Op> make_reduce(const BuildCtx& c) {
  auto op = std::make_unique<ReduceOp<kMean>>();
  op->axes = c.ints_attr("axes");
  op->keepdims = c.int_attr("keepdims", 1);
  op->noop_empty = c.int_attr("noop_with_empty_axes", 0);
  return op;
}
std::unique_ptr<Op> make_gap(const BuildCtx&) { return std::make_unique<GlobalAvgPoolOp>(); }
std::unique_ptr<Op> make_gather(const BuildCtx& c) {
  auto op = std::make_unique<GatherOp>();
  op->axis = c.int_attr("axis", 0);
  if (c.qweight) {
    MIXQ_CHECK(!c.node.inputs.empty() && c.node.inputs[0] == c.qweight->tensor, ErrorKind::kUnsupported, c.desc,
               ": a quantized Gather must read the table as its data input");
    const bool rows = c.qweight->granularity == pack::Gran::kPerTensor ||
                      (c.qweight->granularity == pack::Gran::kPerChannel && c.qweight->axis == 0);
    if (rows && (op->axis == 0 || op->axis == -static_cast<int64_t>(c.qweight->dims.size()))) {
      op->q = c.qweight;
    } else {
      op->table.shape = c.qweight->dims;
      op->table.f = c.qweight->dequantize();
      op->has_table = true;
    }
  }
  return op;
}

}  // namespace

const std::vector<OpRow>& shape_rows() {
  static const std::vector<OpRow> rows = {
      {"Reshape", make_reshape, 2},
      {"Flatten", make_flatten, 1},
      {"Transpose", make_transpose, 1},
      {"Unsqueeze", make_unsqueeze<false>, 1},
      {"Squeeze", make_unsqueeze<true>, 1},
      {"ReduceMean", make_reduce<true>, 1},
      {"ReduceSum", make_reduce<false>, 1},
      {"GlobalAveragePool", make_gap, 1},
      {"Gather", make_gather, 2},
  };
  return rows;
}

}  // namespace mixq::rt
