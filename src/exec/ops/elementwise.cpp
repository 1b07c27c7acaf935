// Elementwise math, activations, comparisons and logic, Clip, Where, PRelu, variadic Max/Min/
// Sum/Mean, Cast, Constant/ConstantOfShape, Identity, Dropout (inference), Shape, and
// QuantizeLinear/DequantizeLinear.
#include <ATen/ATen.h>

#include <algorithm>
#include <cfloat>
#include <map>

#include "exec/ops/ops.h"

namespace mixq {
namespace {

// ---------------------------------------------------------------------------------------------
// Unary ops without attributes. Opsets before 6 carry a 'consumed_inputs' attribute, an in-place
// hint for Caffe2 that does not change the result, so those opsets share the kernel.

template <class F>
class Unary final : public OpKernel {
 public:
  explicit Unary(const NodeInfo&) {}
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    out[0] = F::apply(in[0]);
  }
};

#define MIXQ_UNARY_FN(Name, expr) \
  struct Name {                   \
    static at::Tensor apply(const at::Tensor& x) { return expr; } \
  };

MIXQ_UNARY_FN(Relu, at::relu(x))
MIXQ_UNARY_FN(Sqrt, at::sqrt(x))
MIXQ_UNARY_FN(Exp, at::exp(x))
MIXQ_UNARY_FN(Log, at::log(x))
MIXQ_UNARY_FN(Neg, at::neg(x))
MIXQ_UNARY_FN(Abs, at::abs(x))
MIXQ_UNARY_FN(Sigmoid, at::sigmoid(x))
MIXQ_UNARY_FN(Tanh, at::tanh(x))
MIXQ_UNARY_FN(Erf, at::erf(x))
MIXQ_UNARY_FN(Floor, at::floor(x))
MIXQ_UNARY_FN(Ceil, at::ceil(x))
// at::round rounds halves to even (nearbyint), which is what ONNX Round specifies.
MIXQ_UNARY_FN(Round, at::round(x))
MIXQ_UNARY_FN(Reciprocal, at::reciprocal(x))
MIXQ_UNARY_FN(Sign, at::sign(x))
MIXQ_UNARY_FN(Not, at::logical_not(x))
// x * clamp(x/6 + 1/2, 0, 1): HardSigmoid with alpha 1/6, beta 1/2, exactly at::hardswish.
MIXQ_UNARY_FN(HardSwish, at::hardswish(x))
// ONNX Softplus is log(exp(x) + 1); libtorch returns x above 20, where the two differ by < 3e-9.
MIXQ_UNARY_FN(Softplus, at::softplus(x))

#undef MIXQ_UNARY_FN

class LeakyRelu final : public OpKernel {
 public:
  explicit LeakyRelu(const NodeInfo& info) : alpha_(info.get_float("alpha", 0.01f)) {}
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    out[0] = at::leaky_relu(in[0], alpha_);
  }

 private:
  double alpha_;
};

class Elu final : public OpKernel {
 public:
  explicit Elu(const NodeInfo& info) : alpha_(info.get_float("alpha", 1.0f)) {}
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    out[0] = at::elu(in[0], alpha_);
  }

 private:
  double alpha_;
};

// max(0, min(1, alpha * x + beta)); at::hardsigmoid only covers alpha 1/6, beta 1/2.
class HardSigmoid final : public OpKernel {
 public:
  explicit HardSigmoid(const NodeInfo& info)
      : alpha_(info.get_float("alpha", 0.2f)), beta_(info.get_float("beta", 0.5f)) {}
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    out[0] = at::mul(in[0], alpha_).add_(beta_).clamp_(0, 1);
  }

 private:
  double alpha_, beta_;
};

// ---------------------------------------------------------------------------------------------
// Binary ops. From opset 7 they broadcast numpy-style, which libtorch does natively. Before
// opset 7, broadcasting was opt-in ('broadcast'=1) and B could be aligned to A at 'axis'
// instead of at the trailing dimensions; that alignment is a reshape of B.

class LegacyBroadcast {
 public:
  explicit LegacyBroadcast(const NodeInfo& info) {
    if (info.opset() >= 7) return;
    int64_t b = info.get_int("broadcast", 0);
    if (b != 0 && b != 1) info.fail("attribute 'broadcast' must be 0 or 1");
    if (b == 1 && info.has_attr("axis")) {
      axis_ = info.get_int("axis", 0);
      active_ = true;
    }
  }
  at::Tensor align(const at::Tensor& a, const at::Tensor& b) const {
    if (!active_) return b;
    int64_t axis = axis_ < 0 ? axis_ + a.dim() : axis_;
    int64_t trailing = a.dim() - axis - b.dim();
    MIXQ_CHECK(axis >= 0 && trailing >= 0, ErrorKind::kRuntime, "legacy broadcast: B of rank ",
               b.dim(), " does not fit into A of rank ", a.dim(), " at axis ", axis_);
    if (trailing == 0) return b;
    std::vector<int64_t> shape(b.sizes().begin(), b.sizes().end());
    shape.resize(shape.size() + trailing, 1);
    return b.reshape(shape);
  }

 private:
  int64_t axis_ = 0;
  bool active_ = false;
};

template <class F>
class Binary final : public OpKernel {
 public:
  explicit Binary(const NodeInfo& info) : legacy_(info) {}
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    out[0] = F::apply(in[0], legacy_.align(in[0], in[1]));
  }

 private:
  LegacyBroadcast legacy_;
};

#define MIXQ_BINARY_FN(Name, expr)                                            \
  struct Name {                                                               \
    static at::Tensor apply(const at::Tensor& a, const at::Tensor& b) { return expr; } \
  };

MIXQ_BINARY_FN(Add, at::add(a, b))
MIXQ_BINARY_FN(Sub, at::sub(a, b))
MIXQ_BINARY_FN(Mul, at::mul(a, b))
MIXQ_BINARY_FN(Equal, at::eq(a, b))
MIXQ_BINARY_FN(Less, at::lt(a, b))
MIXQ_BINARY_FN(Greater, at::gt(a, b))
MIXQ_BINARY_FN(LessOrEqual, at::le(a, b))
MIXQ_BINARY_FN(GreaterOrEqual, at::ge(a, b))
MIXQ_BINARY_FN(And, at::logical_and(a, b))
MIXQ_BINARY_FN(Or, at::logical_or(a, b))

#undef MIXQ_BINARY_FN

// libtorch's '/' on integers is true division (float result); ONNX integer Div keeps the type
// and truncates toward zero like C.
struct Div {
  static at::Tensor apply(const at::Tensor& a, const at::Tensor& b) {
    if (at::isIntegralType(a.scalar_type(), /*includeBool=*/true)) return at::div(a, b, "trunc");
    return at::div(a, b);
  }
};

// ONNX Pow's result has the base's type whatever the exponent's type (opset 12+); libtorch would
// promote. An integer base with a floating exponent is computed in double and truncated back,
// as the reference does (numpy power, then astype).
struct Pow {
  static at::Tensor apply(const at::Tensor& a, const at::Tensor& b) {
    const at::ScalarType t = a.scalar_type();
    if (at::isIntegralType(t, true) && at::isFloatingType(b.scalar_type()))
      return at::pow(a.to(at::kDouble), b.to(at::kDouble)).to(t);
    at::Tensor r = at::pow(a, b);
    return r.scalar_type() == t ? r : r.to(t);
  }
};

// ---------------------------------------------------------------------------------------------
// Variadic ops (Max/Min/Sum/Mean): fold pairwise with broadcasting. One input is returned as is.

template <class F>
class Variadic final : public OpKernel {
 public:
  explicit Variadic(const NodeInfo& info) : n_(info.num_inputs()) {
    if (n_ == 0) info.fail("needs at least one input");
    for (size_t i = 0; i < n_; ++i)
      if (!info.has_input(i)) info.fail("input " + std::to_string(i) + " is empty");
  }
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    at::Tensor acc = in[0];
    for (size_t i = 1; i < n_; ++i) acc = F::apply(acc, in[i]);
    out[0] = F::finish(acc, n_);
  }

 private:
  size_t n_;
};

// at::maximum/minimum propagate NaN like numpy's maximum/minimum, which ONNX's reference uses.
struct MaxFold {
  static at::Tensor apply(const at::Tensor& a, const at::Tensor& b) { return at::maximum(a, b); }
  static at::Tensor finish(const at::Tensor& acc, size_t) { return acc; }
};
struct MinFold {
  static at::Tensor apply(const at::Tensor& a, const at::Tensor& b) { return at::minimum(a, b); }
  static at::Tensor finish(const at::Tensor& acc, size_t) { return acc; }
};
struct SumFold {
  static at::Tensor apply(const at::Tensor& a, const at::Tensor& b) { return at::add(a, b); }
  static at::Tensor finish(const at::Tensor& acc, size_t) { return acc; }
};
struct MeanFold {
  static at::Tensor apply(const at::Tensor& a, const at::Tensor& b) { return at::add(a, b); }
  static at::Tensor finish(const at::Tensor& acc, size_t n) {
    return n == 1 ? acc : at::div(acc, static_cast<double>(n));
  }
};

// ---------------------------------------------------------------------------------------------

// PRelu: x where x >= 0, slope * x elsewhere; slope broadcasts unidirectionally to x. A constant
// per-channel slope (shape [C, 1, ..., 1] aligned to dim 1, or a single value) takes
// at::prelu's single-pass kernel; anything else goes through where().
class PRelu final : public OpKernel {
 public:
  explicit PRelu(const NodeInfo& info) {
    const at::Tensor* s = info.constant_input(1);
    if (s == nullptr || !s->is_floating_point()) return;
    bool channel = s->dim() >= 1;
    for (int64_t d = 1; d < s->dim(); ++d) channel = channel && s->size(d) == 1;
    if (s->numel() == 1) {
      fast_slope_ = s->reshape({1});
      max_rank_ = std::max<int64_t>(s->dim(), 1);  // fits any x of at least its rank (not 0-d)
    } else if (channel) {
      fast_slope_ = s->reshape({s->size(0)});
      channel_rank_ = s->dim() + 1;  // x's rank for which slope's first dim lands on dim 1
    }
  }
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    const at::Tensor& x = in[0];
    if (fast_slope_.defined() && x.scalar_type() == fast_slope_.scalar_type() &&
        ((max_rank_ >= 0 && x.dim() >= max_rank_) ||
         (x.dim() == channel_rank_ && x.size(1) == fast_slope_.size(0)))) {
      out[0] = at::prelu(x, fast_slope_);
      return;
    }
    const at::Tensor& slope = in[1];
    at::Tensor y = at::where(x < 0, x * slope, x);
    MIXQ_CHECK(y.sizes() == x.sizes(), ErrorKind::kRuntime, "slope of shape ", slope.sizes(),
               " does not broadcast to X of shape ", x.sizes(), " (PRelu broadcasts slope to X "
               "only)");
    out[0] = std::move(y);
  }

 private:
  at::Tensor fast_slope_;
  int64_t max_rank_ = -1;
  int64_t channel_rank_ = -1;
};

// Clip: bounds are attributes before opset 11 and optional inputs from 11 on. Integer inputs
// (opset 12+) keep their dtype because the bounds are passed as Scalars.
class Clip final : public OpKernel {
 public:
  explicit Clip(const NodeInfo& info) {
    if (info.opset() < 11) {
      // Clip-6 defaults the bounds to the float range, so +-inf become +-FLT_MAX; Clip-1 has no
      // defaults and leaves a missing side unbounded.
      legacy_default_ = info.opset() >= 6;
      if (info.has_attr("min")) lo_ = static_cast<double>(info.get_float("min", 0));
      if (info.has_attr("max")) hi_ = static_cast<double>(info.get_float("max", 0));
      return;
    }
    for (size_t i = 1; i <= 2; ++i) {
      c10::optional<at::Scalar>& bound = i == 1 ? lo_ : hi_;
      if (!info.has_input(i)) continue;
      if (const at::Tensor* t = info.constant_input(i)) {
        if (t->numel() != 1) info.fail(std::string(i == 1 ? "min" : "max") + " must be a scalar");
        bound = t->item();
      } else {
        (i == 1 ? lo_dynamic_ : hi_dynamic_) = true;
      }
    }
  }
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    const at::Tensor& x = in[0];
    c10::optional<at::Scalar> lo = lo_, hi = hi_;
    if (lo_dynamic_ && in[1].defined()) lo = scalar_of(in[1], "min");
    if (hi_dynamic_ && in.size() > 2 && in[2].defined()) hi = scalar_of(in[2], "max");
    if (legacy_default_ && (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble)) {
      if (!lo) lo = at::Scalar(static_cast<double>(-FLT_MAX));
      if (!hi) hi = at::Scalar(static_cast<double>(FLT_MAX));
    }
    out[0] = (lo || hi) ? at::clamp(x, lo, hi) : x;
  }

 private:
  static at::Scalar scalar_of(const at::Tensor& t, const char* what) {
    MIXQ_CHECK(t.numel() == 1, ErrorKind::kRuntime, what, " must be a scalar, got shape ",
               t.sizes());
    return t.item();
  }
  c10::optional<at::Scalar> lo_, hi_;
  bool lo_dynamic_ = false, hi_dynamic_ = false, legacy_default_ = false;
};

class Where final : public OpKernel {
 public:
  explicit Where(const NodeInfo&) {}
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    out[0] = at::where(in[0], in[1], in[2]);
  }
};

// ---------------------------------------------------------------------------------------------
// Cast. Numeric conversions follow C's static_cast, as libtorch's .to() does: float -> integer
// truncates toward zero, anything -> bool is "!= 0" (NaN -> true), bool -> number is 0/1.
// uint16/uint32 are held widened (int32/int64), so casting to them wraps modulo 2^16 / 2^32 by
// masking, which is what the C conversion to the unsigned type does for in-range integers.

DType cast_target(const NodeInfo& info) {
  const Attribute* a = info.node().attr("to");
  if (a == nullptr) info.fail("required attribute 'to' is missing");
  if (a->type == AttrType::kString) {  // Cast-1..5 name the type as a string
    static const std::map<std::string, DType> names = {
        {"FLOAT", DType::kFloat},   {"UINT8", DType::kUInt8},    {"INT8", DType::kInt8},
        {"UINT16", DType::kUInt16}, {"INT16", DType::kInt16},    {"INT32", DType::kInt32},
        {"INT64", DType::kInt64},   {"STRING", DType::kString},  {"BOOL", DType::kBool},
        {"FLOAT16", DType::kFloat16}, {"DOUBLE", DType::kDouble}, {"UINT32", DType::kUInt32},
        {"UINT64", DType::kUInt64}, {"COMPLEX64", DType::kComplex64},
        {"COMPLEX128", DType::kComplex128}, {"BFLOAT16", DType::kBFloat16}};
    auto it = names.find(a->s);
    if (it == names.end()) info.fail("attribute 'to' names an unknown type '" + a->s + "'");
    return it->second;
  }
  int64_t to = info.req_int("to");
  if (to <= 0 || to > static_cast<int64_t>(DType::kBFloat16))
    info.fail("attribute 'to' must be a TensorProto data type (1-16), got " + std::to_string(to));
  return static_cast<DType>(to);
}

class Cast final : public OpKernel {
 public:
  explicit Cast(const NodeInfo& info) {
    DType to = cast_target(info);
    if (to == DType::kString)
      info.unsupported("casting to string is not supported (mixq has no string tensors)");
    if (to == DType::kComplex64 || to == DType::kComplex128)
      info.unsupported("casting to complex types is not supported");
    type_ = scalar_type_for(to, info.where());
    if (to == DType::kUInt16) mask_ = 0xFFFF;
    if (to == DType::kUInt32) mask_ = 0xFFFFFFFFLL;
  }
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    const at::Tensor& x = in[0];
    if (x.scalar_type() == type_ && mask_ == 0) {
      out[0] = x;
      return;
    }
    at::Tensor y = x.to(type_);
    // Bools and uint8 are already in range; everything else may need wrapping.
    if (mask_ != 0 && x.scalar_type() != at::kBool && x.scalar_type() != at::kByte)
      y = at::bitwise_and(y, mask_);
    out[0] = std::move(y);
  }

 private:
  at::ScalarType type_;
  int64_t mask_ = 0;
};

// ---------------------------------------------------------------------------------------------

class Constant final : public OpKernel {
 public:
  explicit Constant(const NodeInfo& info) {
    static const char* const kAttrs[] = {"value",      "value_float",  "value_floats",
                                         "value_int",  "value_ints",   "value_string",
                                         "value_strings", "sparse_value"};
    std::string which;
    int n = 0;
    for (const char* a : kAttrs)
      if (info.has_attr(a)) {
        which = a;
        ++n;
      }
    if (n != 1)
      info.fail("exactly one of the attributes value, value_float(s), value_int(s), "
                "value_string(s), sparse_value must be set (found " + std::to_string(n) + ")");
    if (which == "value") {
      value_ = info.get_tensor("value");
    } else if (which == "value_float") {
      value_ = at::scalar_tensor(info.get_float("value_float", 0), at::kFloat);
    } else if (which == "value_floats") {
      value_ = at::tensor(info.get_floats("value_floats"), at::kFloat);
    } else if (which == "value_int") {
      value_ = at::scalar_tensor(info.get_int("value_int", 0), at::kLong);
    } else if (which == "value_ints") {
      value_ = at::tensor(info.get_ints("value_ints"), at::kLong);
    } else if (which == "sparse_value") {
      info.unsupported("sparse_value constants are not supported (densify the constant)");
    } else {
      info.unsupported("string constants (" + which + ") are not supported (mixq has no string "
                       "tensors)");
    }
  }
  void compute(const std::vector<at::Tensor>&, std::vector<at::Tensor>& out) override {
    out[0] = value_;
  }

 private:
  at::Tensor value_;
};

class ConstantOfShape final : public OpKernel {
 public:
  explicit ConstantOfShape(const NodeInfo& info) {
    at::Tensor v = info.get_tensor("value");
    if (!v.defined()) return;  // default: float 0
    if (v.numel() != 1) info.fail("attribute 'value' must hold exactly one element");
    value_ = v.reshape({}).item();
    dtype_ = v.scalar_type();
  }
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    const at::Tensor& s = in[0];
    MIXQ_CHECK(s.dim() == 1, ErrorKind::kRuntime, "shape input must be 1-D, got shape ",
               s.sizes());
    at::Tensor s64 = s.to(at::kLong).contiguous();
    std::vector<int64_t> dims(s64.data_ptr<int64_t>(), s64.data_ptr<int64_t>() + s64.numel());
    for (int64_t d : dims)
      MIXQ_CHECK(d >= 0, ErrorKind::kRuntime, "shape has a negative dimension ", d);
    out[0] = at::full(dims, value_, at::TensorOptions().dtype(dtype_));
  }

 private:
  at::Scalar value_ = at::Scalar(0.0);
  at::ScalarType dtype_ = at::kFloat;
};

// ---------------------------------------------------------------------------------------------

class Identity final : public OpKernel {
 public:
  explicit Identity(const NodeInfo&) {}
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    out[0] = in[0];
  }
};

// Dropout at inference: output = input, mask all true. Opset 12+ can ask for training through
// the training_mode input; with a nonzero ratio that is random, so mixq refuses it.
class Dropout final : public OpKernel {
 public:
  explicit Dropout(const NodeInfo& info) {
    const int64_t opset = info.opset();
    mask_is_bool_ = opset >= 10;  // Dropout-7..9 return the mask in the input's type
    want_mask_ = info.has_output(1);
    if (opset < 7 && info.get_int("is_test", 0) == 0)
      info.unsupported("is_test=0 asks for training-time (random) dropout; mixq runs inference "
                       "only (re-export the model in eval mode)");
    if (opset < 12) {
      float ratio = info.get_float("ratio", 0.5f);
      if (!(ratio >= 0 && ratio < 1)) info.fail("attribute 'ratio' must be in [0, 1)");
      return;
    }
    double ratio = 0.5;
    if (const at::Tensor* r = info.constant_input(1)) {
      ratio = r->item<double>();
      if (!(ratio >= 0 && ratio < 1)) info.fail("ratio must be in [0, 1)");
    } else if (info.has_input(1)) {
      ratio = -1;  // known at run time only
    }
    if (const at::Tensor* t = info.constant_input(2)) {
      if (t->item<bool>() && ratio != 0)
        info.unsupported("training_mode=true (random training-time dropout) is not supported; "
                         "mixq runs inference only");
    } else {
      check_training_ = info.has_input(2);
    }
  }
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    const at::Tensor& x = in[0];
    if (check_training_ && in[2].defined() && in[2].item<bool>()) {
      double ratio = in[1].defined() ? in[1].item<double>() : 0.5;
      if (ratio != 0)
        throw Error(ErrorKind::kUnsupported,
                    "training_mode is true with ratio " + std::to_string(ratio) +
                        ": random training-time dropout is not supported (mixq runs inference "
                        "only)");
    }
    out[0] = x;
    if (want_mask_)
      out[1] = at::ones(x.sizes(), x.options().dtype(mask_is_bool_ ? at::kBool : x.scalar_type()));
  }

 private:
  bool mask_is_bool_ = true, want_mask_ = false, check_training_ = false;
};

// Shape (opset 15 adds start/end, clamped to [0, rank] after adding rank to negative values).
class Shape final : public OpKernel {
 public:
  explicit Shape(const NodeInfo& info) {
    start_ = info.get_int("start", 0);
    if (info.has_attr("end")) end_ = info.get_int("end", 0);
    sliced_ = start_ != 0 || info.has_attr("end");
  }
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    at::IntArrayRef sizes = in[0].sizes();
    if (!sliced_) {
      out[0] = at::tensor(sizes, at::kLong);
      return;
    }
    const int64_t rank = static_cast<int64_t>(sizes.size());
    auto norm = [rank](int64_t v) {
      if (v < 0) v += rank;
      return v < 0 ? 0 : (v > rank ? rank : v);
    };
    int64_t s = norm(start_), e = norm(end_.value_or(rank));
    if (e < s) e = s;
    out[0] = at::tensor(sizes.slice(s, e - s), at::kLong);
  }

 private:
  int64_t start_ = 0;
  c10::optional<int64_t> end_;
  bool sliced_ = false;
};

// ---------------------------------------------------------------------------------------------
// QuantizeLinear / DequantizeLinear. A 0-d (or single-element) scale/zero point is per-tensor;
// a 1-D one (opset 13+) is per-channel along 'axis' (default 1).

at::Tensor along_axis(const at::Tensor& p, int64_t axis, int64_t rank) {
  if (p.numel() == 1) return p.reshape({});
  int64_t a = axis < 0 ? axis + rank : axis;
  MIXQ_CHECK(p.dim() == 1 && a >= 0 && a < rank, ErrorKind::kRuntime, "per-axis scale/zero point",
             " must be 1-D and axis ", axis, " must be within the input's rank ", rank,
             " (got shape ", p.sizes(), ")");
  std::vector<int64_t> shape(static_cast<size_t>(rank), 1);
  shape[static_cast<size_t>(a)] = p.size(0);
  return p.view(shape);
}

// y = saturate(round_half_even(x / scale) + zero_point), the division in float32 like the
// reference and ONNX Runtime (libtorch's quantize_per_tensor multiplies by 1/scale, which
// rounds some ties differently).
class QuantizeLinear final : public OpKernel {
 public:
  explicit QuantizeLinear(const NodeInfo& info) {
    axis_ = info.opset() >= 13 ? info.get_int("axis", 1) : 1;
    if (const at::Tensor* z = info.constant_input(2)) check_type(z->scalar_type(), info);
  }
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    const at::Tensor& x = in[0];
    const at::Tensor zp = in.size() > 2 ? in[2] : at::Tensor();
    const at::ScalarType t = zp.defined() ? zp.scalar_type() : at::kByte;
    MIXQ_CHECK(t == at::kByte || t == at::kChar, ErrorKind::kUnsupported,
               "zero point type ", t, " is not supported (uint8 or int8)");
    const int64_t rank = x.dim();
    at::Tensor y = at::div(x.scalar_type() == at::kFloat ? x : x.to(at::kFloat),
                           along_axis(in[1], axis_, rank));
    y.round_();
    if (zp.defined()) y.add_(along_axis(zp, axis_, rank));
    if (t == at::kByte) y.clamp_(0, 255); else y.clamp_(-128, 127);
    out[0] = y.to(t);
  }

 private:
  static void check_type(at::ScalarType t, const NodeInfo& info) {
    if (t != at::kByte && t != at::kChar)
      info.unsupported("y_zero_point must be uint8 or int8 (other quantized types are not "
                       "implemented)");
  }
  int64_t axis_;
};

// y = (x - zero_point) * scale. int32 inputs subtract in int32 (as ONNX Runtime does) before
// converting, which keeps large values exact; 8-bit values are exact in float either way.
class DequantizeLinear final : public OpKernel {
 public:
  explicit DequantizeLinear(const NodeInfo& info) {
    axis_ = info.opset() >= 13 ? info.get_int("axis", 1) : 1;
  }
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    const at::Tensor& x = in[0];
    const at::Tensor zp = in.size() > 2 ? in[2] : at::Tensor();
    const at::ScalarType t = x.scalar_type();
    MIXQ_CHECK(t == at::kByte || t == at::kChar || t == at::kInt, ErrorKind::kUnsupported,
               "input type ", t, " is not supported (uint8, int8 or int32)");
    const int64_t rank = x.dim();
    at::Tensor y;
    if (zp.defined() && t == at::kInt) {
      y = at::sub(x, along_axis(zp, axis_, rank)).to(at::kFloat);
    } else {
      y = x.to(at::kFloat);
      if (zp.defined()) y.sub_(along_axis(zp, axis_, rank));
    }
    y.mul_(along_axis(in[1], axis_, rank));
    out[0] = std::move(y);
  }

 private:
  int64_t axis_;
};

}  // namespace

const std::vector<OpRow>& elementwise_op_rows() {
  static const std::vector<OpRow> rows = {
      {"Relu", 1, 17, make_kernel<Unary<Relu>>},
      {"Sqrt", 1, 17, make_kernel<Unary<Sqrt>>},
      {"Exp", 1, 17, make_kernel<Unary<Exp>>},
      {"Log", 1, 17, make_kernel<Unary<Log>>},
      {"Neg", 1, 17, make_kernel<Unary<Neg>>},
      {"Abs", 1, 17, make_kernel<Unary<Abs>>},
      {"Sigmoid", 1, 17, make_kernel<Unary<Sigmoid>>},
      {"Tanh", 1, 17, make_kernel<Unary<Tanh>>},
      {"Erf", 9, 17, make_kernel<Unary<Erf>>},
      {"Floor", 1, 17, make_kernel<Unary<Floor>>},
      {"Ceil", 1, 17, make_kernel<Unary<Ceil>>},
      {"Round", 11, 17, make_kernel<Unary<Round>>},
      {"Reciprocal", 1, 17, make_kernel<Unary<Reciprocal>>},
      {"Sign", 9, 17, make_kernel<Unary<Sign>>},
      {"Not", 1, 17, make_kernel<Unary<Not>>},
      {"HardSwish", 14, 17, make_kernel<Unary<HardSwish>>},
      {"Softplus", 1, 17, make_kernel<Unary<Softplus>>},
      {"LeakyRelu", 1, 17, make_kernel<LeakyRelu>},
      {"Elu", 1, 17, make_kernel<Elu>},
      {"HardSigmoid", 1, 17, make_kernel<HardSigmoid>},
      {"PRelu", 1, 17, make_kernel<PRelu>},
      {"Add", 1, 17, make_kernel<Binary<Add>>},
      {"Sub", 1, 17, make_kernel<Binary<Sub>>},
      {"Mul", 1, 17, make_kernel<Binary<Mul>>},
      {"Div", 1, 17, make_kernel<Binary<Div>>},
      {"Pow", 1, 17, make_kernel<Binary<Pow>>},
      {"Equal", 1, 17, make_kernel<Binary<Equal>>},
      {"Less", 1, 17, make_kernel<Binary<Less>>},
      {"Greater", 1, 17, make_kernel<Binary<Greater>>},
      {"LessOrEqual", 12, 17, make_kernel<Binary<LessOrEqual>>},
      {"GreaterOrEqual", 12, 17, make_kernel<Binary<GreaterOrEqual>>},
      {"And", 1, 17, make_kernel<Binary<And>>},
      {"Or", 1, 17, make_kernel<Binary<Or>>},
      {"Max", 1, 17, make_kernel<Variadic<MaxFold>>},
      {"Min", 1, 17, make_kernel<Variadic<MinFold>>},
      {"Sum", 1, 17, make_kernel<Variadic<SumFold>>},
      {"Mean", 1, 17, make_kernel<Variadic<MeanFold>>},
      {"Clip", 1, 17, make_kernel<Clip>},
      {"Where", 9, 17, make_kernel<Where>},
      {"Cast", 1, 17, make_kernel<Cast>},
      {"Constant", 1, 17, make_kernel<Constant>},
      {"ConstantOfShape", 9, 17, make_kernel<ConstantOfShape>},
      {"Identity", 1, 17, make_kernel<Identity>},
      {"Dropout", 1, 17, make_kernel<Dropout>},
      {"Shape", 1, 17, make_kernel<Shape>},
      {"QuantizeLinear", 10, 17, make_kernel<QuantizeLinear>},
      {"DequantizeLinear", 10, 17, make_kernel<DequantizeLinear>},
  };
  return rows;
}

}  // namespace mixq
