// Gemm, MatMul, Softmax/LogSoftmax, the spatial-attribute helpers shared by the conv and pool
// kernels, and the table that gathers the nn_*.cpp rows.
#include <ATen/ATen.h>

#include <cmath>

#include "exec/ops/nn_internal.h"
#include "exec/ops/ops.h"

namespace mixq {
namespace nn {

void runtime_fail(const std::string& msg) { throw Error(ErrorKind::kRuntime, msg); }

void require_inputs(const NodeInfo& info, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!info.has_input(i))
      info.fail("input " + std::to_string(i) + " is required (" + info.node().op_type + " takes at least " +
                std::to_string(n) + " inputs)");
}

void Spatial::parse(const NodeInfo& info, bool kernel_required, bool allow_dilations) {
  std::string ap = info.get_string("auto_pad", "NOTSET");
  if (ap == "NOTSET" || ap.empty()) auto_pad = AutoPad::kNotSet;
  else if (ap == "SAME_UPPER") auto_pad = AutoPad::kSameUpper;
  else if (ap == "SAME_LOWER") auto_pad = AutoPad::kSameLower;
  else if (ap == "VALID") auto_pad = AutoPad::kValid;
  else info.fail("attribute 'auto_pad' must be NOTSET, SAME_UPPER, SAME_LOWER or VALID, got '" + ap + "'");

  if (kernel_required && !info.has_attr("kernel_shape"))
    info.fail("required attribute 'kernel_shape' is missing");
  if (!allow_dilations && info.has_attr("dilations"))
    info.fail("attribute 'dilations' is not defined for this operator at this opset");
  kernel = info.get_ints("kernel_shape");
  strides = info.get_ints("strides");
  dilations = info.get_ints("dilations");
  std::vector<int64_t> pads = info.get_ints("pads");
  if (pads.size() % 2 != 0) info.fail("attribute 'pads' must have an even length (begins, then ends)");

  int64_t n = -1;
  auto agree = [&](const char* name, size_t len, bool present) {
    if (!present) return;
    if (n >= 0 && static_cast<int64_t>(len) != n)
      info.fail(std::string("attribute '") + name + "' has " + std::to_string(len) +
                " entries but the other spatial attributes imply " + std::to_string(n) + " axes");
    n = static_cast<int64_t>(len);
  };
  agree("kernel_shape", kernel.size(), info.has_attr("kernel_shape"));
  agree("strides", strides.size(), info.has_attr("strides"));
  agree("dilations", dilations.size(), info.has_attr("dilations"));
  agree("pads", pads.size() / 2, info.has_attr("pads"));
  for (int64_t k : kernel)
    if (k < 1) info.fail("attribute 'kernel_shape' must be positive");
  for (int64_t s : strides)
    if (s < 1) info.fail("attribute 'strides' must be positive");
  for (int64_t d : dilations)
    if (d < 1) info.fail("attribute 'dilations' must be positive");
  for (int64_t p : pads)
    if (p < 0) info.fail("attribute 'pads' must be non-negative");
  // The spec forbids pads together with auto_pad; exporters that write both write zeros.
  if (auto_pad == AutoPad::kNotSet) {
    pads_begin.assign(pads.begin(), pads.begin() + pads.size() / 2);
    pads_end.assign(pads.begin() + pads.size() / 2, pads.end());
  }
  if (n >= 0) set_rank(n);
}

void Spatial::set_rank(int64_t rank) {
  if (nd >= 0) return;
  nd = rank;
  if (strides.empty()) strides.assign(rank, 1);
  if (dilations.empty()) dilations.assign(rank, 1);
  if (pads_begin.empty()) pads_begin.assign(rank, 0);
  if (pads_end.empty()) pads_end.assign(rank, 0);
}

void Spatial::pads_for(size_t i, int64_t in, int64_t k, int64_t& b, int64_t& e) const {
  switch (auto_pad) {
    case AutoPad::kNotSet:
      b = pads_begin[i];
      e = pads_end[i];
      return;
    case AutoPad::kValid:
      b = e = 0;
      return;
    default: {
      int64_t s = strides[i];
      int64_t out = (in + s - 1) / s;
      int64_t total = std::max<int64_t>(0, (out - 1) * s + eff_kernel(i, k) - in);
      // The odd pixel goes to the end for SAME_UPPER and to the beginning for SAME_LOWER.
      b = auto_pad == AutoPad::kSameUpper ? total / 2 : total - total / 2;
      e = total - b;
    }
  }
}

}  // namespace nn

namespace {

using nn::is_reduced_float;
using nn::runtime_fail;
using nn::to_float_if;

class Gemm final : public OpKernel {
 public:
  explicit Gemm(const NodeInfo& info)
      : alpha_(info.get_float("alpha", 1.0f)),
        beta_(info.get_float("beta", 1.0f)),
        trans_a_(info.get_int("transA", 0) != 0),
        trans_b_(info.get_int("transB", 0) != 0) {
    nn::require_inputs(info, 2);
  }

  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    const at::Tensor& a0 = in[0];
    const at::Tensor& b0 = in[1];
    at::Tensor c = in.size() > 2 ? in[2] : at::Tensor();
    if (a0.dim() != 2 || b0.dim() != 2) runtime_fail("Gemm needs 2-D A and B");
    bool low = is_reduced_float(a0);
    at::Tensor a = to_float_if(a0, low), b = to_float_if(b0, low);
    c = to_float_if(c, low);
    if (trans_a_) a = a.t();
    if (trans_b_) b = b.t();
    at::Tensor y;
    if (at::isIntegralType(a.scalar_type(), /*includeBool=*/true)) {
      // addmm rejects floating alpha/beta for integer tensors; ONNX allows them.
      y = at::mm(a, b);
      if (alpha_ != 1.0f) y = at::mul(y, static_cast<double>(alpha_)).to(y.scalar_type());
      if (c.defined() && beta_ != 0.0f)
        y = at::add(y, at::mul(c, static_cast<double>(beta_)).to(y.scalar_type()));
    } else if (c.defined() && beta_ != 0.0f) {
      y = at::addmm(c, a, b, beta_, alpha_);
    } else {
      y = at::mm(a, b);
      if (alpha_ != 1.0f) y.mul_(alpha_);
    }
    out[0] = low ? y.to(a0.scalar_type()) : y;
  }

 private:
  float alpha_, beta_;
  bool trans_a_, trans_b_;
};

class MatMul final : public OpKernel {
 public:
  explicit MatMul(const NodeInfo& info) { nn::require_inputs(info, 2); }
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    if (in[0].dim() == 0 || in[1].dim() == 0) runtime_fail("MatMul operands must be at least 1-D");
    if (is_reduced_float(in[0]))
      out[0] = at::matmul(in[0].to(at::kFloat), in[1].to(at::kFloat)).to(in[0].scalar_type());
    else
      out[0] = at::matmul(in[0], in[1]);
  }
};

// Softmax and LogSoftmax. Before opset 13 the input is seen as 2-D [prod(d[:axis]), prod(d[axis:])]
// and normalized over the second axis (default axis 1); from 13 along `axis` (default -1).
template <bool kLog>
class SoftmaxT final : public OpKernel {
 public:
  explicit SoftmaxT(const NodeInfo& info)
      : coerce_2d_(info.opset() < 13), axis_(info.get_int("axis", info.opset() < 13 ? 1 : -1)) {
    nn::require_inputs(info, 1);
  }

  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    const at::Tensor& x = in[0];
    int64_t r = x.dim();
    int64_t axis = axis_ < 0 ? axis_ + r : axis_;
    if (r == 0 ? axis_ != 0 && axis_ != -1 : (axis < 0 || axis >= r))
      runtime_fail("axis " + std::to_string(axis_) + " is out of range for a rank-" +
                   std::to_string(r) + " input");
    bool low = is_reduced_float(x);
    c10::optional<at::ScalarType> dt = low ? c10::optional<at::ScalarType>(at::kFloat) : c10::nullopt;
    at::Tensor y;
    if (r == 0) {
      y = apply(x.reshape({1}), 0, dt).reshape({});
    } else if (!coerce_2d_ || axis == r - 1) {
      y = apply(x, axis, dt);
    } else {
      y = apply(x.reshape({c10::multiply_integers(x.sizes().slice(0, axis)), -1}), 1, dt)
              .reshape(x.sizes());
    }
    out[0] = low ? y.to(x.scalar_type()) : y;
  }

 private:
  static at::Tensor apply(const at::Tensor& x, int64_t dim, c10::optional<at::ScalarType> dt) {
    return kLog ? at::log_softmax(x, dim, dt) : at::softmax(x, dim, dt);
  }
  bool coerce_2d_;
  int64_t axis_;
};

}  // namespace

const std::vector<OpRow>& nn_op_rows() {
  static const std::vector<OpRow> rows = [] {
    std::vector<OpRow> r = {
        {"Gemm", 1, 18, make_kernel<Gemm>},
        {"MatMul", 1, 18, make_kernel<MatMul>},
        {"Softmax", 1, 18, make_kernel<SoftmaxT<false>>},
        {"LogSoftmax", 1, 18, make_kernel<SoftmaxT<true>>},
    };
    for (const auto* part : {&nn::conv_rows(), &nn::pool_rows(), &nn::norm_rows()})
      r.insert(r.end(), part->begin(), part->end());
    return r;
  }();
  return rows;
}

}  // namespace mixq
