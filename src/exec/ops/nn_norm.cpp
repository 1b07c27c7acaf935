// BatchNormalization, LayerNormalization, InstanceNormalization.
#include <ATen/ATen.h>

#include "exec/ops/nn_internal.h"

namespace mixq {
namespace nn {
namespace {

class BatchNorm final : public OpKernel {
 public:
  explicit BatchNorm(const NodeInfo& info)
      : eps_(info.get_float("epsilon", 1e-5f)), momentum_(info.get_float("momentum", 0.9f)) {
    require_inputs(info, 5);
    if (info.opset() < 9) spatial_ = info.get_int("spatial", 1) != 0;
    if (info.opset() >= 14) {
      int64_t tm = info.get_int("training_mode", 0);
      if (tm != 0 && tm != 1) info.fail("attribute 'training_mode' must be 0 or 1");
      training_ = tm == 1;
      if (!training_ && (info.has_output(1) || info.has_output(2)))
        info.fail("outputs running_mean and running_var exist only with training_mode=1");
    } else if (info.has_output(1) || info.has_output(2) || info.has_output(3) || info.has_output(4)) {
      // Before opset 14 the extra outputs mean training mode, whose saved_mean/saved_var
      // definitions differ between versions and runtimes.
      info.unsupported("training-mode outputs (mean, var, saved_mean, saved_var) before opset 14 "
                       "are not implemented; re-export the model in eval mode");
    }
    if (training_ && !spatial_) info.fail("training_mode needs spatial batch normalization");
    want_mean_ = info.has_output(1);
    want_var_ = info.has_output(2);
  }

  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    const at::Tensor& x0 = in[0];
    if (x0.dim() < 2) runtime_fail("expected an input of rank >= 2 (N x C x ...)");
    bool low = is_reduced_float(x0);
    at::Tensor x = to_float_if(x0, low);
    at::Tensor scale = to_float_if(in[1], low), bias = to_float_if(in[2], low);
    at::Tensor mean = to_float_if(in[3], low), var = to_float_if(in[4], low);
    at::Tensor y;
    if (!spatial_) {
      // Opsets 7-8 with spatial=0: statistics per (C, D1, ..., Dn) element, shared over N.
      auto b = [](const at::Tensor& t) { return t.unsqueeze(0); };
      y = (x - b(mean)) * at::rsqrt(b(var) + eps_) * b(scale) + b(bias);
    } else if (training_) {
      // ONNX (opset 14+): normalize with the batch statistics (biased variance) and blend
      // them into the running ones with `momentum`.
      std::vector<int64_t> dims = {0};
      for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
      at::Tensor bmean = x.mean(dims), bvar = x.var(dims, /*unbiased=*/false);
      y = at::batch_norm(x, scale, bias, bmean, bvar, false, 0.0, eps_, false);
      auto back = [&](const at::Tensor& t) { return low ? t.to(x0.scalar_type()) : t; };
      if (want_mean_) out[1] = back(mean * momentum_ + bmean * (1.0f - momentum_));
      if (want_var_) out[2] = back(var * momentum_ + bvar * (1.0f - momentum_));
    } else {
      y = at::batch_norm(x, scale, bias, mean, var, false, 0.0, eps_, false);
    }
    out[0] = low ? y.to(x0.scalar_type()) : y;
  }

 private:
  float eps_, momentum_;
  bool spatial_ = true, training_ = false, want_mean_ = false, want_var_ = false;
};

// Opset 17: normalize over axes [axis, rank); Mean and InvStdDev keep the reduced axes as 1
// and are computed (like Y) in stash_type precision.
class LayerNorm final : public OpKernel {
 public:
  explicit LayerNorm(const NodeInfo& info)
      : axis_(info.get_int("axis", -1)), eps_(info.get_float("epsilon", 1e-5f)) {
    require_inputs(info, 2);
    int64_t stash = info.get_int("stash_type", 1);
    if (stash == 1) stash_ = at::kFloat;
    else if (stash == 11) stash_ = at::kDouble;
    else info.unsupported("stash_type " + std::to_string(stash) + " is not implemented (supported: 1 float, 11 double)");
    want_mean_ = info.has_output(1);
    want_inv_std_ = info.has_output(2);
  }

  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    const at::Tensor& x0 = in[0];
    int64_t r = x0.dim();
    int64_t axis = axis_ < 0 ? axis_ + r : axis_;
    if (axis < 0 || axis >= r)
      runtime_fail("axis " + std::to_string(axis_) + " is out of range for a rank-" + std::to_string(r) + " input");
    at::IntArrayRef norm_shape = x0.sizes().slice(axis);
    bool cast = x0.scalar_type() != stash_;
    at::Tensor x = cast ? x0.to(stash_) : x0;
    at::Tensor scale = in[1], bias = in.size() > 2 ? in[2] : at::Tensor();
    // Scale and B broadcast to X.shape[axis:]; native_layer_norm wants them exactly that shape.
    if (!scale.sizes().equals(norm_shape)) scale = scale.expand(norm_shape);
    if (bias.defined() && !bias.sizes().equals(norm_shape)) bias = bias.expand(norm_shape);
    if (cast) {
      scale = scale.to(stash_);
      if (bias.defined()) bias = bias.to(stash_);
    }
    auto res = at::native_layer_norm(x, norm_shape, scale, bias, eps_);
    out[0] = cast ? std::get<0>(res).to(x0.scalar_type()) : std::get<0>(res);
    if (want_mean_ || want_inv_std_) {
      std::vector<int64_t> stat_shape(x0.sizes().begin(), x0.sizes().end());
      for (int64_t d = axis; d < r; ++d) stat_shape[d] = 1;
      if (want_mean_) out[1] = std::get<1>(res).reshape(stat_shape);
      if (want_inv_std_) out[2] = std::get<2>(res).reshape(stat_shape);
    }
  }

 private:
  int64_t axis_;
  float eps_;
  at::ScalarType stash_ = at::kFloat;
  bool want_mean_ = false, want_inv_std_ = false;
};

// Per-(n, c) statistics: group norm with one group per channel, a single libtorch kernel.
class InstanceNorm final : public OpKernel {
 public:
  explicit InstanceNorm(const NodeInfo& info) : eps_(info.get_float("epsilon", 1e-5f)) {
    require_inputs(info, 3);
  }
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    const at::Tensor& x0 = in[0];
    if (x0.dim() < 3) runtime_fail("expected an input of rank >= 3 (N x C x D1 ...)");
    bool low = is_reduced_float(x0);
    at::Tensor y = at::group_norm(to_float_if(x0, low), x0.size(1), to_float_if(in[1], low),
                                  to_float_if(in[2], low), eps_, false);
    out[0] = low ? y.to(x0.scalar_type()) : y;
  }

 private:
  float eps_;
};

}  // namespace

const std::vector<OpRow>& norm_rows() {
  static const std::vector<OpRow> rows = {
      {"BatchNormalization", 6, 18, make_kernel<BatchNorm>},
      {"LayerNormalization", 17, 18, make_kernel<LayerNorm>},
      {"InstanceNormalization", 6, 18, make_kernel<InstanceNorm>},
  };
  return rows;
}

}  // namespace nn
}  // namespace mixq
