// Shape and reduction operators: Reshape, Flatten, Transpose, Squeeze/Unsqueeze, ReduceMean/Sum,
// GlobalAveragePool, Gather (with on-the-fly dequantization of a quantized embedding table).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/embed_bag.h"
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
  kernels::Isa isa = kernels::Isa::kRef;  // the bag's dequantize-add kernel (kernels/embed_bag.h)
  Tensor table;                      // dequantized at load when q cannot be used directly
  bool has_table = false;
  // One row's codes as row_codes / wide_codes unpack them (one per thread of an embedding bag).
  struct RowBuf {
    std::vector<uint8_t> codes;
    std::vector<uint16_t> wide;
  };
  RowBuf buf_;

  const Tensor* data_of(const std::vector<const Tensor*>& in) const { return has_table ? &table : in[0]; }
  std::vector<int64_t> data_shape(const Tensor* data) const { return q ? q->dims : data->shape; }
  // Index k of an axis of n (negative counts from the end), unchecked / checked.
  static int64_t wrap(int64_t k, int64_t n) { return k < 0 ? k + n : k; }
  int64_t row_of(int64_t k, int64_t n) const {
    const int64_t r = wrap(k, n);
    RT_CHECK(r >= 0 && r < n, this, "index ", k, " outside [", -n, ", ", n - 1, "]");
    return r;
  }

  // Float row k of the table (`inner` values from element `src` = k * inner along axis 0, or the
  // row's place in an outer slice) written to dst (kAdd false) or added to it (kAdd true; the same
  // value as written, then one float add: an embedding bag gives the bits of Gather + ReduceSum).
  template <bool kAdd>
  void float_row(const Tensor* data, int64_t src, int64_t k, int64_t inner, float* dst, RowBuf& buf) const {
    auto put = [dst](int64_t t, float v) {
      if (kAdd) dst[t] += v;
      else dst[t] = v;
    };
    if (!q) {
      const float* s = data->f.data() + src;
      for (int64_t t = 0; t < inner; ++t) put(t, s[t]);
      return;
    }
    const int64_t p = q->granularity == pack::Gran::kPerTensor ? 0 : k;
    if (kAdd && q->form == 0 && q->bits <= 8) {  // an embedding bag's row: the vector kernel, same bits
      kernels::embed_add_u8(row_codes(src, inner, buf), inner, q->scales[p], static_cast<float>(q->qmin()),
                            static_cast<float>(q->zero_points[p]), dst, isa);
      return;
    }
    if (q->bits <= 8) values(p, row_codes(src, inner, buf), inner, put);
    else values(p, wide_codes(src, inner, buf), inner, put);
  }

  template <typename C, typename Put>
  void values(int64_t p, const C* c, int64_t inner, Put put) const {
    if (q->form == 0) {  // (the loops vectorise at one code byte per value)
      const float s = q->scales[p], z = static_cast<float>(q->zero_points[p]), qmin = static_cast<float>(q->qmin());
      for (int64_t t = 0; t < inner; ++t) put(t, s * (static_cast<float>(c[t]) + qmin - z));
    } else if (q->form == 1) {  // a row-wise table (quant/rowwise_ref.h): s * q + offset
      const float s = q->scales[p], off = q->offsets[p];
      for (int64_t t = 0; t < inner; ++t) put(t, s * static_cast<float>(c[t]) + off);
    } else {  // a codebook table: a centroid per code
      const float* cb = q->codebook.data() + (p << q->bits);
      for (int64_t t = 0; t < inner; ++t) put(t, cb[c[t]]);
    }
  }

  // The `inner` codes from code index `src` on, unpacked into buf (any width).
  const uint16_t* wide_codes(int64_t src, int64_t inner, RowBuf& buf) const {
    std::vector<uint16_t>& w = buf.wide;
    w.resize(static_cast<size_t>(inner));
    const int bits = q->bits;
    if (src * bits % 8 == 0) {
      pack::unpack_bits(q->packed.data() + src * bits / 8, inner, bits, w.data());
    } else {
      for (int64_t t = 0; t < inner; ++t) w[t] = static_cast<uint16_t>(pack::unpack_one(q->packed.data(), src + t, bits));
    }
    return w.data();
  }

  // The `inner` codes (<= 8 bits) from code index `src` on, one per byte: the packed bytes
  // themselves at 8 bits, else expanded into buf.
  const uint8_t* row_codes(int64_t src, int64_t inner, RowBuf& buf) const {
    const uint8_t* packed = q->packed.data();
    const int bits = q->bits;
    if (bits == 8) return packed + src;
    buf.codes.resize(static_cast<size_t>(inner));
    uint8_t* u = buf.codes.data();
    if (src * bits % 8 != 0) {  // the row starts inside a byte
      for (int64_t t = 0; t < inner; ++t) u[t] = static_cast<uint8_t>(pack::unpack_one(packed, src + t, bits));
      return u;
    }
    pack::unpack_bits_u8(packed + src * bits / 8, inner, bits, u);
    return u;
  }

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx& ctx) override {
    const Tensor* data = data_of(in);
    const Tensor& idx = *in[1];
    RT_CHECK(idx.dtype == ElemType::kInt64, this, "indices must be integers");
    const std::vector<int64_t> dshape = data_shape(data);
    const int64_t r = static_cast<int64_t>(dshape.size()), a = norm_axis(this, axis, r);
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < a; ++d) outer *= dshape[d];
    for (int64_t d = a + 1; d < r; ++d) inner *= dshape[d];
    const int64_t n = dshape[a], ni = idx.numel();
    std::vector<int64_t> shape(dshape.begin(), dshape.begin() + a);
    shape.insert(shape.end(), idx.shape.begin(), idx.shape.end());
    shape.insert(shape.end(), dshape.begin() + a + 1, dshape.end());
    const bool fl = q || data->dtype == ElemType::kFloat32;
    Tensor y = fl ? output_floats(shape, ctx) : Tensor::ints(shape);  // (every element is written)
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < ni; ++j) {
        const int64_t k = row_of(idx.i[j], n);
        const int64_t src = (o * n + k) * inner, dst = (o * ni + j) * inner;
        if (fl) float_row<false>(data, src, k, inner, y.f.data() + dst, buf_);
        else std::copy(data->i.begin() + src, data->i.begin() + src + inner, y.i.begin() + dst);
      }
    out[0] = std::move(y);
  }
};

// Gather (axis 0) -> ReduceSum | ReduceMean over the trailing index axes: an embedding bag. The
// gathered rows are summed straight into the output, never written out as the [.., bag, row]
// tensor (at batch 64 the fixture's is 6.4 MB, and writing and re-reading it was 85% of the run).
// Same float operations in the same order as the two ops (ReduceOp's block path: zero, then one
// add per gathered row), so the same bits. Other shapes and axes run the two ops as they are.
class EmbeddingBagOp : public Op {
 public:
  GatherOp* gather = nullptr;  // the Gather, left in place (skipped) in the model's op list
  std::unique_ptr<Op> reduce;  // a ReduceOp (its axes input, if any, held in `axes`)
  Tensor axes;                 // the reduction's axes input (int64), or empty
  bool has_axes = false;
  std::vector<int64_t> attr_axes;
  int64_t keepdims = 1, noop_empty = 0;
  bool mean = false;
  std::vector<GatherOp::RowBuf> bufs_;  // per thread

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx& ctx) override {
    const Tensor* data = gather->data_of(in);
    const Tensor& idx = *in[1];
    RT_CHECK(idx.dtype == ElemType::kInt64, this, "indices must be integers");
    const std::vector<int64_t> dshape = gather->data_shape(data);
    const int64_t r = static_cast<int64_t>(dshape.size()), ri = idx.rank(), ro = r - 1 + ri;
    const std::vector<int64_t>& ax = has_axes ? axes.i : attr_axes;
    // Which gathered axes are reduced: the bag must be the index axes [r0, ri).
    std::vector<bool> red(static_cast<size_t>(std::max<int64_t>(ro, 0)), ax.empty() && !noop_empty);
    bool ok = r >= 2 && (gather->axis == 0 || gather->axis == -r) && (gather->q || data->dtype == ElemType::kFloat32);
    for (int64_t a : ax) {
      const int64_t x = a < 0 ? a + ro : a;
      if (x < 0 || x >= ro) ok = false;  // (the two ops say what is wrong)
      else red[static_cast<size_t>(x)] = true;
    }
    int64_t r0 = ri;
    while (r0 > 0 && ok && red[static_cast<size_t>(r0 - 1)]) --r0;
    for (int64_t d = 0; d < ro && ok; ++d) ok = red[static_cast<size_t>(d)] == (d >= r0 && d < ri);
    int64_t inner = 1;
    for (int64_t d = 1; d < r; ++d) inner *= dshape[d];
    if (!ok || r0 == ri || inner == 1) {  // (inner 1: ReduceOp sums rows pairwise; not this order)
      RunCtx apart = ctx;
      apart.donor = nullptr;  // (the donor is this op's input 0; neither op may take it)
      std::vector<Tensor> g(1);
      gather->run({in[0], in[1]}, g, apart);
      reduce->run({&g[0], has_axes ? &axes : nullptr}, out, apart);
      return;
    }
    int64_t bags = 1, count = 1;
    std::vector<int64_t> shape;
    for (int64_t d = 0; d < r0; ++d) { bags *= idx.shape[d]; shape.push_back(idx.shape[d]); }
    for (int64_t d = r0; d < ri; ++d) {
      count *= idx.shape[d];
      if (keepdims) shape.push_back(1);
    }
    shape.insert(shape.end(), dshape.begin() + 1, dshape.end());
    Tensor y = output_floats(shape, ctx);
    std::fill(y.f.begin(), y.f.end(), 0.0f);
    const int64_t n = dshape[0];
    for (int64_t j = 0; j < bags * count; ++j) gather->row_of(idx.i[j], n);  // (refused before the threads)
    // Bags split over the threads where each has at least 64K values to sum.
    const int nthreads = static_cast<int>(std::clamp<int64_t>(bags * count * inner >> 16, 1, std::min<int64_t>(ctx.threads, bags)));
    bufs_.resize(static_cast<size_t>(nthreads));
#pragma omp parallel for num_threads(nthreads) schedule(static) if (nthreads > 1)
    for (int64_t b = 0; b < bags; ++b) {
      GatherOp::RowBuf& buf = bufs_[static_cast<size_t>(nthreads > 1 ? omp_thread() : 0)];
      float* yb = y.f.data() + b * inner;
      for (int64_t j = b * count; j < (b + 1) * count; ++j) {
        const int64_t k = GatherOp::wrap(idx.i[j], n);  // (checked above)
        gather->float_row<true>(data, k * inner, k, inner, yb, buf);
      }
    }
    if (mean && count > 0)
      for (float& v : y.f) v /= static_cast<float>(count);
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
  op->isa = c.isa;
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

template <bool kMean>
bool take_reduce(EmbeddingBagOp& bag, std::unique_ptr<Op>& reduce) {
  auto* r = dynamic_cast<ReduceOp<kMean>*>(reduce.get());
  if (!r) return false;
  bag.attr_axes = r->axes;
  bag.keepdims = r->keepdims;
  bag.noop_empty = r->noop_empty;
  bag.mean = kMean;
  return true;
}

}  // namespace

std::unique_ptr<Op> make_embedding_bag(Op* gather, std::unique_ptr<Op>& reduce, const Tensor* axes) {
  auto* g = dynamic_cast<GatherOp*>(gather);
  if (!g) return nullptr;
  if (axes && axes->dtype != ElemType::kInt64) return nullptr;
  auto bag = std::make_unique<EmbeddingBagOp>();
  if (!take_reduce<false>(*bag, reduce) && !take_reduce<true>(*bag, reduce)) return nullptr;
  if (axes) {
    bag->axes = *axes;
    bag->has_axes = true;
  }
  bag->desc = reduce->desc + " (embedding bag fused with " + gather->desc + ")";
  bag->gather = g;
  bag->reduce = std::move(reduce);
  return bag;
}

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
