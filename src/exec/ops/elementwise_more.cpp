// More elementwise ops, the ones exporters emit less often than those in elementwise.cpp:
// trigonometric and hyperbolic functions, IsNaN/IsInf, Selu/Celu/ThresholdedRelu/Softsign/Mish/
// Shrink, Mod, Xor, BitShift, CastLike and the opset-18 Bitwise* ops.
#include <ATen/ATen.h>

#include "exec/ops/ops.h"

namespace mixq {
namespace {

using Tensors = std::vector<at::Tensor>;

template <at::Tensor (*F)(const at::Tensor&)>
class Unary final : public OpKernel {
 public:
  explicit Unary(const NodeInfo&) {}
  void compute(const Tensors& in, Tensors& out) override { out[0] = F(in[0]); }
};

at::Tensor sin_(const at::Tensor& x) { return at::sin(x); }
at::Tensor cos_(const at::Tensor& x) { return at::cos(x); }
at::Tensor tan_(const at::Tensor& x) { return at::tan(x); }
at::Tensor asin_(const at::Tensor& x) { return at::asin(x); }
at::Tensor acos_(const at::Tensor& x) { return at::acos(x); }
at::Tensor atan_(const at::Tensor& x) { return at::atan(x); }
at::Tensor sinh_(const at::Tensor& x) { return at::sinh(x); }
at::Tensor cosh_(const at::Tensor& x) { return at::cosh(x); }
at::Tensor asinh_(const at::Tensor& x) { return at::asinh(x); }
at::Tensor acosh_(const at::Tensor& x) { return at::acosh(x); }
at::Tensor atanh_(const at::Tensor& x) { return at::atanh(x); }
at::Tensor isnan_(const at::Tensor& x) { return at::isnan(x); }
at::Tensor softsign_(const at::Tensor& x) { return x / (x.abs() + 1); }
at::Tensor mish_(const at::Tensor& x) { return x * at::tanh(at::softplus(x)); }
at::Tensor bitwise_not_(const at::Tensor& x) { return at::bitwise_not(x); }

class IsInf final : public OpKernel {
 public:
  explicit IsInf(const NodeInfo& info)
      : neg_(info.get_int("detect_negative", 1) != 0), pos_(info.get_int("detect_positive", 1) != 0) {}
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor& x = in[0];
    if (neg_ && pos_) out[0] = at::isinf(x);
    else if (pos_) out[0] = at::isposinf(x);
    else if (neg_) out[0] = at::isneginf(x);
    else out[0] = at::zeros(x.sizes(), x.options().dtype(at::kBool));
  }

 private:
  bool neg_, pos_;
};

// gamma * (x > 0 ? x : alpha * (exp(x) - 1)); at::selu fixes alpha and gamma.
class Selu final : public OpKernel {
 public:
  explicit Selu(const NodeInfo& info)
      : alpha_(info.get_float("alpha", 1.67326319217681884765625f)),
        gamma_(info.get_float("gamma", 1.05070102214813232421875f)) {}
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor& x = in[0];
    out[0] = at::where(x > 0, x, (at::exp(x) - 1) * alpha_) * gamma_;
  }

 private:
  double alpha_, gamma_;
};

// max(0, x) + min(0, alpha * (exp(x / alpha) - 1)), which is at::celu.
class Celu final : public OpKernel {
 public:
  explicit Celu(const NodeInfo& info) : alpha_(info.get_float("alpha", 1.0f)) {
    if (alpha_ == 0) info.fail("attribute 'alpha' must not be 0");
  }
  void compute(const Tensors& in, Tensors& out) override { out[0] = at::celu(in[0], alpha_); }

 private:
  double alpha_;
};

class ThresholdedRelu final : public OpKernel {
 public:
  explicit ThresholdedRelu(const NodeInfo& info) : alpha_(info.get_float("alpha", 1.0f)) {}
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor& x = in[0];
    out[0] = at::where(x > alpha_, x, at::zeros_like(x));
  }

 private:
  double alpha_;
};

// x < -lambd: x + bias; x > lambd: x - bias; else 0. Integer inputs keep their dtype.
class Shrink final : public OpKernel {
 public:
  explicit Shrink(const NodeInfo& info)
      : lambd_(info.get_float("lambd", 0.5f)), bias_(info.get_float("bias", 0.0f)) {}
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor& x = in[0];
    at::Tensor xf = x.is_floating_point() ? x : x.to(at::kDouble);
    at::Tensor y = at::where(xf < -lambd_, xf + bias_, at::where(xf > lambd_, xf - bias_, at::zeros_like(xf)));
    out[0] = y.scalar_type() == x.scalar_type() ? y : y.to(x.scalar_type());
  }

 private:
  double lambd_, bias_;
};

// fmod = 0: integer remainder with the divisor's sign (Python's %); fmod = 1: C's fmod (the
// dividend's sign), the only mode floats may use.
class Mod final : public OpKernel {
 public:
  explicit Mod(const NodeInfo& info) : fmod_(info.get_int("fmod", 0) != 0) {}
  void compute(const Tensors& in, Tensors& out) override {
    const at::Tensor &a = in[0], &b = in[1];
    if (!fmod_ && a.is_floating_point())
      throw Error(ErrorKind::kRuntime, "fmod must be 1 for floating-point inputs");
    out[0] = fmod_ ? at::fmod(a, b) : at::remainder(a, b);
  }

 private:
  bool fmod_;
};

template <at::Tensor (*F)(const at::Tensor&, const at::Tensor&)>
class Binary final : public OpKernel {
 public:
  explicit Binary(const NodeInfo&) {}
  void compute(const Tensors& in, Tensors& out) override { out[0] = F(in[0], in[1]); }
};

at::Tensor xor_(const at::Tensor& a, const at::Tensor& b) { return at::logical_xor(a, b); }
at::Tensor band_(const at::Tensor& a, const at::Tensor& b) { return at::bitwise_and(a, b); }
at::Tensor bor_(const at::Tensor& a, const at::Tensor& b) { return at::bitwise_or(a, b); }
at::Tensor bxor_(const at::Tensor& a, const at::Tensor& b) { return at::bitwise_xor(a, b); }

// Cast to the element type of the second input (opset 15).
class CastLike final : public OpKernel {
 public:
  explicit CastLike(const NodeInfo&) {}
  void compute(const Tensors& in, Tensors& out) override { out[0] = in[0].to(in[1].scalar_type()); }
};

// Unsigned inputs only (ONNX); shifts past the width give 0.
class BitShift final : public OpKernel {
 public:
  explicit BitShift(const NodeInfo& info) {
    const std::string d = info.get_string("direction", "");
    if (d == "LEFT") left_ = true;
    else if (d == "RIGHT") left_ = false;
    else info.fail("attribute 'direction' must be LEFT or RIGHT, got '" + d + "'");
  }
  void compute(const Tensors& in, Tensors& out) override {
    out[0] = left_ ? at::bitwise_left_shift(in[0], in[1]) : at::bitwise_right_shift(in[0], in[1]);
  }

 private:
  bool left_ = true;
};

}  // namespace

const std::vector<OpRow>& elementwise_more_op_rows() {
  static const std::vector<OpRow> rows = {
      {"Sin", 7, 18, make_kernel<Unary<sin_>>},
      {"Cos", 7, 18, make_kernel<Unary<cos_>>},
      {"Tan", 7, 18, make_kernel<Unary<tan_>>},
      {"Asin", 7, 18, make_kernel<Unary<asin_>>},
      {"Acos", 7, 18, make_kernel<Unary<acos_>>},
      {"Atan", 7, 18, make_kernel<Unary<atan_>>},
      {"Sinh", 9, 18, make_kernel<Unary<sinh_>>},
      {"Cosh", 9, 18, make_kernel<Unary<cosh_>>},
      {"Asinh", 9, 18, make_kernel<Unary<asinh_>>},
      {"Acosh", 9, 18, make_kernel<Unary<acosh_>>},
      {"Atanh", 9, 18, make_kernel<Unary<atanh_>>},
      {"IsNaN", 9, 18, make_kernel<Unary<isnan_>>},
      {"IsInf", 10, 18, make_kernel<IsInf>},
      {"Softsign", 1, 18, make_kernel<Unary<softsign_>>},
      {"Mish", 18, 18, make_kernel<Unary<mish_>>},
      {"Selu", 6, 18, make_kernel<Selu>},
      {"Celu", 12, 18, make_kernel<Celu>},
      {"ThresholdedRelu", 10, 18, make_kernel<ThresholdedRelu>},
      {"Shrink", 9, 18, make_kernel<Shrink>},
      {"Mod", 10, 18, make_kernel<Mod>},
      {"Xor", 7, 18, make_kernel<Binary<xor_>>},
      {"BitShift", 11, 18, make_kernel<BitShift>},
      {"CastLike", 15, 18, make_kernel<CastLike>},
      {"BitwiseAnd", 18, 18, make_kernel<Binary<band_>>},
      {"BitwiseOr", 18, 18, make_kernel<Binary<bor_>>},
      {"BitwiseXor", 18, 18, make_kernel<Binary<bxor_>>},
      {"BitwiseNot", 18, 18, make_kernel<Unary<bitwise_not_>>},
  };
  return rows;
}

}  // namespace mixq
