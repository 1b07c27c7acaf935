#include "quant/methods/fused_adam.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>

#include "kernels/recon.h"
#include "mixq/error.h"

namespace mixq {

FusedAdam::FusedAdam(std::vector<at::Tensor> params, double lr) : params_(std::move(params)), lr_(lr) {
  for (const auto& p : params_) {
    MIXQ_ASSERT(p.scalar_type() == at::kFloat && p.is_contiguous(), "FusedAdam needs contiguous float32 parameters");
    m_.push_back(at::zeros_like(p));
    v_.push_back(at::zeros_like(p));
    steps_.push_back(0);
  }
}

void FusedAdam::zero_grad() {
  for (auto& p : params_) p.mutable_grad() = at::Tensor();
}

void FusedAdam::step() {
  static const kernels::Isa isa = kernels::default_isa();
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& p = params_[i];
    if (!p.grad().defined()) continue;
    const at::Tensor g = p.grad().to(at::kFloat).contiguous();
    const double t = static_cast<double>(++steps_[i]);
    const double bc1 = 1.0 - std::pow(beta1_, t), bc2 = 1.0 - std::pow(beta2_, t);
    kernels::AdamStep a;
    a.beta1 = static_cast<float>(beta1_);
    a.beta2 = static_cast<float>(beta2_);
    a.one_minus_beta1 = static_cast<float>(1.0 - beta1_);
    a.one_minus_beta2 = static_cast<float>(1.0 - beta2_);
    a.sqrt_bias_correction2 = static_cast<float>(std::sqrt(bc2));
    a.eps = static_cast<float>(eps_);
    a.neg_step_size = static_cast<float>(-lr_ / bc1);
    // The parameter is a leaf that requires grad: write its storage directly, as optimisers do.
    float *pp = p.data_ptr<float>(), *mp = m_[i].data_ptr<float>(), *vp = v_[i].data_ptr<float>();
    const float* gp = g.data_ptr<float>();
    at::parallel_for(0, p.numel(), 1 << 14, [&](int64_t b, int64_t e) {
      kernels::adam_step(pp + b, gp + b, mp + b, vp + b, e - b, a, isa);
    });
  }
}

}  // namespace mixq
