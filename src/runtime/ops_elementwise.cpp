// Elementwise operators: numpy-broadcast binaries (float32 and int64), float unaries, Clip, Cast,
// Softmax. Semantics follow ONNX opset 13 (the fixtures' opset); rounding is half-to-even like
// the executor.
#include <algorithm>
#include <cmath>

#include "mixq/error.h"
#include "kernels/vmath.h"
#include "runtime/broadcast.h"
#include "runtime/ops.h"
#include "runtime/row_reduce.h"

namespace mixq::rt {

namespace {

enum class Bin { kAdd, kSub, kMul, kDiv, kPow };

// Whether a binary elementwise op may read `in` with its channels-last operands as they are: every
// channels-last operand meets another of the same shape or a scalar, so flat index i is the same
// element in every operand and in the output.
bool binary_takes_nhwc(const std::vector<const Tensor*>& in) {
  if (in.size() != 2 || !in[0] || !in[1]) return false;
  const Tensor &a = *in[0], &b = *in[1];
  if (a.dtype != ElemType::kFloat32 || b.dtype != ElemType::kFloat32 || a.is_codes() || b.is_codes()) return false;
  auto fits = [](const Tensor& t, const Tensor& o) {
    return !t.nhwc || (o.nhwc && o.shape == t.shape) || (!o.nhwc && o.numel() == 1);
  };
  return fits(a, b) && fits(b, a);
}

template <Bin K>
class BinaryOp : public Op {
 public:
  bool may_take_nhwc(size_t) const override { return true; }
  bool takes_nhwc(size_t, const std::vector<const Tensor*>& in) const override { return binary_takes_nhwc(in); }
  bool is_add() const override { return K == Bin::kAdd; }
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx& ctx) override {
    RT_CHECK(in.size() == 2 && in[0] && in[1], this, "needs two inputs");
    const Tensor &a = *in[0], &b = *in[1];
    if (ctx.donor && a.dtype == ElemType::kFloat32 && b.dtype == ElemType::kFloat32 && a.shape == b.shape &&
        in[0] != in[1]) {
      Tensor y = take_input0(in, ctx);  // a's buffer, reused (a aliases it: read b only)
      const float* pb = b.f.data();
      for (size_t i = 0; i < y.f.size(); ++i) y.f[i] = apply(y.f[i], pb[i]);
      out[0] = std::move(y);
      return;
    }
    const std::vector<int64_t> shape = broadcast_shape(this, a.shape, b.shape);
    const auto sa = bstrides(a.shape, shape), sb = bstrides(b.shape, shape);
    if (a.dtype == ElemType::kFloat32 && b.dtype == ElemType::kFloat32) {
      Tensor y = output_floats(shape, ctx);  // (every element written)
      const float *pa = a.f.data(), *pb = b.f.data();
      float* py = y.f.data();
      if (a.shape == b.shape) {
        for (int64_t i = 0, n = y.numel(); i < n; ++i) py[i] = apply(pa[i], pb[i]);
      } else if (!shape.empty()) {
        // Row by row over the last dim: each operand either runs along the row or repeats one
        // value (stride 1 or 0), so the inner loops are plain vector loops (LayerNorm's x - mean,
        // x * gamma, a scalar exponent or divisor).
        for_rows(shape, sa, sb, [&](int64_t o, int64_t oa, int64_t ob, int64_t len, int64_t ia, int64_t ib) {
          const float *xa = pa + oa, *xb = pb + ob;
          float* yo = py + o;
          if (ia && ib) for (int64_t j = 0; j < len; ++j) yo[j] = apply(xa[j], xb[j]);
          else if (ia) { const float vb = *xb; for (int64_t j = 0; j < len; ++j) yo[j] = apply(xa[j], vb); }
          else if (ib) { const float va = *xa; for (int64_t j = 0; j < len; ++j) yo[j] = apply(va, xb[j]); }
          else { const float v = apply(*xa, *xb); for (int64_t j = 0; j < len; ++j) yo[j] = v; }
        });
      } else {
        for_broadcast(shape, sa, sb, [&](int64_t o, int64_t ia, int64_t ib) { py[o] = apply(pa[ia], pb[ib]); });
      }
      y.nhwc = a.nhwc || b.nhwc;  // (takes_nhwc: then the other is the same shape or a scalar)
      out[0] = std::move(y);
    } else if (K == Bin::kPow) {
      // Pow takes the base's type; the exponent may be float or int64 (ONNX Pow-12+).
      const bool fa = a.dtype == ElemType::kFloat32, fb = b.dtype == ElemType::kFloat32;
      Tensor y = fa ? Tensor::floats(shape) : Tensor::ints(shape);
      for_broadcast(shape, sa, sb, [&](int64_t o, int64_t ia, int64_t ib) {
        const double e = fb ? double(b.f[static_cast<size_t>(ib)]) : double(b.i[static_cast<size_t>(ib)]);
        if (fa) y.f[static_cast<size_t>(o)] = static_cast<float>(std::pow(double(a.f[static_cast<size_t>(ia)]), e));
        else y.i[static_cast<size_t>(o)] = static_cast<int64_t>(std::pow(double(a.i[static_cast<size_t>(ia)]), e));
      });
      out[0] = std::move(y);
    } else {
      RT_CHECK(a.dtype == ElemType::kInt64 && b.dtype == ElemType::kInt64, this, "mixed or unsupported element types");
      Tensor y = Tensor::ints(shape);
      const int64_t *pa = a.i.data(), *pb = b.i.data();
      int64_t* py = y.i.data();
      for_broadcast(shape, sa, sb, [&](int64_t o, int64_t ia, int64_t ib) {
        if (K == Bin::kDiv) RT_CHECK(pb[ib] != 0, this, "integer division by zero");
        py[o] = applyi(pa[ia], pb[ib]);
      });
      out[0] = std::move(y);
    }
  }

 private:
  static float apply(float x, float y) {
    switch (K) {
      case Bin::kAdd: return x + y;
      case Bin::kSub: return x - y;
      case Bin::kMul: return x * y;
      case Bin::kDiv: return x / y;
      case Bin::kPow: return y == 2.0f ? x * x : std::pow(x, y);
    }
    return 0;
  }
  static int64_t applyi(int64_t x, int64_t y) {
    switch (K) {
      case Bin::kAdd: return x + y;
      case Bin::kSub: return x - y;
      case Bin::kMul: return x * y;
      default: return x / y;
    }
  }
};

enum class Un { kRelu, kSqrt, kErf, kRound, kSigmoid, kTanh, kExp, kNeg, kAbs, kReciprocal, kHardSwish };

// Unary elementwise ops read any float layout and keep it (take_input0 copies the form).
bool float_operand(const std::vector<const Tensor*>& in) {
  return !in.empty() && in[0] && in[0]->dtype == ElemType::kFloat32 && !in[0]->is_codes();
}

template <Un K>
class UnaryOp : public Op {
 public:
  kernels::Isa isa = kernels::Isa::kRef;  // Erf / Exp run the vectorised kernels (kernels/vmath.h)
  bool may_take_nhwc(size_t idx) const override { return idx == 0; }
  bool takes_nhwc(size_t idx, const std::vector<const Tensor*>& in) const override {
    return idx == 0 && float_operand(in);
  }
  bool act_clamp(kernels::ActClamp* act) const override {
    if (K != Un::kRelu) return false;
    *act = kernels::ActClamp{0.0f, INFINITY};
    return true;
  }
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx& ctx) override {
    RT_CHECK(!in.empty() && in[0] && in[0]->dtype == ElemType::kFloat32, this, "needs a float32 input");
    Tensor y = take_input0(in, ctx);
    const int64_t n = static_cast<int64_t>(y.f.size());
    if (K == Un::kErf) kernels::erf_f32(y.f.data(), y.f.data(), n, isa);
    else if (K == Un::kExp) kernels::exp_f32(y.f.data(), y.f.data(), n, isa);
    else for (float& v : y.f) v = apply(v);
    out[0] = std::move(y);
  }

 private:
  static float apply(float x) {
    switch (K) {
      case Un::kRelu: return x > 0 ? x : 0.0f;
      case Un::kSqrt: return std::sqrt(x);
      case Un::kErf: return std::erf(x);
      case Un::kRound: {  // half to even, as nearbyint in the default mode, without its libm call:
        // below 2^23 adding and taking away 2^23 rounds |x| to an integer; above it x is one.
        const float a = std::fabs(x);
        return a < 0x1p23f ? std::copysign((a + 0x1p23f) - 0x1p23f, x) : x;
      }
      case Un::kSigmoid: return 1.0f / (1.0f + std::exp(-x));
      case Un::kTanh: return std::tanh(x);
      case Un::kExp: return std::exp(x);
      case Un::kNeg: return -x;
      case Un::kAbs: return std::fabs(x);
      case Un::kReciprocal: return 1.0f / x;
      case Un::kHardSwish: return x * std::max(0.0f, std::min(1.0f, x / 6.0f + 0.5f));
    }
    return x;
  }
};

class IdentityOp : public Op {
 public:
  bool may_take_nhwc(size_t idx) const override { return idx == 0; }
  bool takes_nhwc(size_t idx, const std::vector<const Tensor*>& in) const override {
    return idx == 0 && float_operand(in);
  }
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx&) override {
    RT_CHECK(!in.empty() && in[0], this, "needs an input");
    out[0] = *in[0];
    // Dropout's optional mask: inference keeps every element (all true, held as int64 1).
    if (out.size() > 1) {
      out[1] = Tensor::ints(in[0]->shape);
      std::fill(out[1].i.begin(), out[1].i.end(), 1);
    }
  }
};

// HardSigmoid: max(0, min(1, alpha x + beta)).
class HardSigmoidOp : public Op {
 public:
  float alpha = 0.2f, beta = 0.5f;
  bool may_take_nhwc(size_t idx) const override { return idx == 0; }
  bool takes_nhwc(size_t idx, const std::vector<const Tensor*>& in) const override {
    return idx == 0 && float_operand(in);
  }
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx& ctx) override {
    RT_CHECK(!in.empty() && in[0] && in[0]->dtype == ElemType::kFloat32, this, "needs a float32 input");
    Tensor y = take_input0(in, ctx);
    for (float& v : y.f) v = std::max(0.0f, std::min(1.0f, alpha * v + beta));
    out[0] = std::move(y);
  }
};

// Clip-13: min/max from optional inputs 1 and 2 (read at run time; usually constants).
class ClipOp : public Op {
 public:
  float amin = -INFINITY, amax = INFINITY;
  bool const_bounds = true;  // min/max are attributes or stored tensors (known at load)
  float kmin = -INFINITY, kmax = INFINITY;  // their values then
  bool may_take_nhwc(size_t idx) const override { return idx == 0; }
  bool takes_nhwc(size_t idx, const std::vector<const Tensor*>& in) const override {
    return idx == 0 && float_operand(in);
  }
  bool act_clamp(kernels::ActClamp* act) const override {
    if (!const_bounds) return false;
    *act = kernels::ActClamp{kmin, kmax};
    return true;
  }
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx& ctx) override {
    RT_CHECK(!in.empty() && in[0] && in[0]->dtype == ElemType::kFloat32, this, "needs a float32 input");
    float lo = amin, hi = amax;
    if (in.size() > 1 && in[1]) { RT_CHECK(in[1]->numel() == 1 && !in[1]->f.empty(), this, "min must be a float scalar"); lo = in[1]->f[0]; }
    if (in.size() > 2 && in[2]) { RT_CHECK(in[2]->numel() == 1 && !in[2]->f.empty(), this, "max must be a float scalar"); hi = in[2]->f[0]; }
    Tensor y = take_input0(in, ctx);
    for (float& v : y.f) v = std::min(std::max(v, lo), hi);
    out[0] = std::move(y);
  }
};

class CastOp : public Op {
 public:
  int64_t to = 1;
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx&) override {
    RT_CHECK(!in.empty() && in[0], this, "needs an input");
    const Tensor& x = *in[0];
    if (to == 1) {
      Tensor y = Tensor::floats(x.shape);
      if (x.dtype == ElemType::kFloat32) y.f = x.f;
      else for (size_t i = 0; i < x.i.size(); ++i) y.f[i] = static_cast<float>(x.i[i]);
      out[0] = std::move(y);
    } else if (to == 9) {  // bool, held as int64 0 / 1
      Tensor y = Tensor::ints(x.shape);
      for (size_t i = 0; i < y.i.size(); ++i) y.i[i] = x.dtype == ElemType::kInt64 ? x.i[i] != 0 : x.f[i] != 0.0f;
      out[0] = std::move(y);
    } else {
      Tensor y = Tensor::ints(x.shape);
      if (x.dtype == ElemType::kInt64) y.i = x.i;
      else for (size_t i = 0; i < x.f.size(); ++i) {
        RT_CHECK(std::isfinite(x.f[i]), this, "cannot cast ", x.f[i], " to an integer");
        y.i[i] = static_cast<int64_t>(x.f[i]);  // toward zero, as ONNX Cast
      }
      out[0] = std::move(y);
    }
  }
};

class SoftmaxOp : public Op {
 public:
  int64_t axis = -1;
  kernels::Isa isa = kernels::Isa::kRef;
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx&) override {
    RT_CHECK(!in.empty() && in[0] && in[0]->dtype == ElemType::kFloat32, this, "needs a float32 input");
    Tensor y = *in[0];
    const int64_t r = y.rank(), ax = axis < 0 ? axis + r : axis;
    RT_CHECK(ax >= 0 && ax < r, this, "axis ", axis, " outside rank ", r);
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < ax; ++d) outer *= y.shape[d];
    for (int64_t d = ax + 1; d < r; ++d) inner *= y.shape[d];
    const int64_t n = y.shape[ax];
    if (inner == 1) {  // rows along the last axis: one exp over the whole tensor (kernels/vmath.h)
      for (int64_t o = 0; o < outer; ++o) {
        float* p = y.f.data() + o * n;
        const float mx = row_max8(p, n);
        for (int64_t k = 0; k < n; ++k) p[k] -= mx;
      }
      kernels::exp_f32(y.f.data(), y.f.data(), outer * n, isa);
      for (int64_t o = 0; o < outer; ++o) {
        float* p = y.f.data() + o * n;
        const float s = row_sum8(p, n);
        for (int64_t k = 0; k < n; ++k) p[k] /= s;
      }
      out[0] = std::move(y);
      return;
    }
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < inner; ++j) {
        float* p = y.f.data() + o * n * inner + j;
        float mx = -INFINITY;
        for (int64_t k = 0; k < n; ++k) mx = std::max(mx, p[k * inner]);
        float s = 0;
        for (int64_t k = 0; k < n; ++k) {
          float e = p[k * inner] - mx;
          kernels::exp_f32(&e, &e, 1, isa);
          p[k * inner] = e;
          s += e;
        }
        for (int64_t k = 0; k < n; ++k) p[k * inner] /= s;
      }
    out[0] = std::move(y);
  }
};

template <typename T>
std::unique_ptr<Op> make(const BuildCtx&) { return std::make_unique<T>(); }

std::unique_ptr<Op> make_clip(const BuildCtx& c) {
  auto op = std::make_unique<ClipOp>();
  op->amin = c.float_attr("min", -INFINITY);  // Clip < 11 kept them as attributes
  op->amax = c.float_attr("max", INFINITY);
  op->kmin = op->amin;
  op->kmax = op->amax;
  for (size_t k = 1; k <= 2 && k < c.node.inputs.size(); ++k) {
    if (c.node.inputs[k].empty()) continue;
    const pack::Tensor* t = c.const_input(k);
    if (!t || t->dtype != ElemType::kFloat32 || t->numel() != 1 || t->f.empty()) {
      op->const_bounds = false;
      continue;
    }
    (k == 1 ? op->kmin : op->kmax) = t->f[0];
  }
  return op;
}

std::unique_ptr<Op> make_cast(const BuildCtx& c) {
  auto op = std::make_unique<CastOp>();
  op->to = c.int_attr("to", 1);
  MIXQ_CHECK(op->to == 1 || op->to == 7 || op->to == 6 || op->to == 9, ErrorKind::kUnsupported, c.desc,
             ": Cast to dtype ", op->to, " (the runtime holds float32 and int64 only; bool as int64 0/1)");
  if (op->to == 6) op->to = 7;  // int32 is held as int64
  return op;
}

template <Un K>
std::unique_ptr<Op> make_unary_isa(const BuildCtx& c) {
  auto op = std::make_unique<UnaryOp<K>>();
  op->isa = c.isa;
  return op;
}

std::unique_ptr<Op> make_hard_sigmoid(const BuildCtx& c) {
  auto op = std::make_unique<HardSigmoidOp>();
  op->alpha = c.float_attr("alpha", 0.2f);
  op->beta = c.float_attr("beta", 0.5f);
  return op;
}

std::unique_ptr<Op> make_softmax(const BuildCtx& c) {
  auto op = std::make_unique<SoftmaxOp>();
  op->axis = c.int_attr("axis", -1);
  op->isa = c.isa;
  return op;
}

}  // namespace

const std::vector<OpRow>& elementwise_rows() {
  static const std::vector<OpRow> rows = {
      {"Add", make<BinaryOp<Bin::kAdd>>, 2},
      {"Sub", make<BinaryOp<Bin::kSub>>, 2},
      {"Mul", make<BinaryOp<Bin::kMul>>, 2},
      {"Div", make<BinaryOp<Bin::kDiv>>, 2},
      {"Pow", make<BinaryOp<Bin::kPow>>, 2},
      {"Relu", make<UnaryOp<Un::kRelu>>, 1},
      {"Sqrt", make<UnaryOp<Un::kSqrt>>, 1},
      {"Erf", make_unary_isa<Un::kErf>, 1},
      {"Round", make<UnaryOp<Un::kRound>>, 1},
      {"Sigmoid", make<UnaryOp<Un::kSigmoid>>, 1},
      {"Tanh", make<UnaryOp<Un::kTanh>>, 1},
      {"Exp", make_unary_isa<Un::kExp>, 1},
      {"Neg", make<UnaryOp<Un::kNeg>>, 1},
      {"Abs", make<UnaryOp<Un::kAbs>>, 1},
      {"Reciprocal", make<UnaryOp<Un::kReciprocal>>, 1},
      {"HardSwish", make<UnaryOp<Un::kHardSwish>>, 1},
      {"HardSigmoid", make_hard_sigmoid, 1},
      {"Identity", make<IdentityOp>, 1},
      {"Dropout", make<IdentityOp>, 1},
      {"Clip", make_clip, 1},
      {"Cast", make_cast, 1},
      {"Softmax", make_softmax, 1},
  };
  return rows;
}

}  // namespace mixq::rt
