#include "quant/methods/soft_quant.h"

#include <ATen/ATen.h>

#include "quant/methods/fused_quant.h"
#include "quant/quantizer.h"

namespace mixq {

SoftRounding::SoftRounding(const at::Tensor& w_in, const QParams& p, const QScheme& scheme)
    : qmin_(static_cast<double>(scheme.qmin())), qmax_(static_cast<double>(scheme.qmax())) {
  at::NoGradGuard no_grad;
  at::Tensor w = w_in.detach().to(at::kFloat).contiguous();
  scale_ = broadcast_param(p.scale, scheme, w.sizes()).to(at::kFloat);
  zero_ = broadcast_param(p.zero_point, scheme, w.sizes()).to(at::kFloat);
  at::Tensor t = w / scale_;  // division, as the scheme defines
  floor_ = at::floor(t);
  at::Tensor rest = t - floor_;  // [0, 1)
  // h(V) = rest  <=>  sigmoid(V) = (rest - gamma) / (zeta - gamma).
  v_ = -at::log((kZeta - kGamma) / (rest - kGamma) - 1.0);
  scale_full_ = scale_.expand(w.sizes()).contiguous();
  zero_full_ = zero_.expand(w.sizes()).contiguous();
  floor_ = floor_.contiguous();
  v_.set_requires_grad(true);
}

at::Tensor SoftRounding::h() const {
  return at::clamp(at::sigmoid(v_) * (kZeta - kGamma) + kGamma, 0.0, 1.0);
}

at::Tensor SoftRounding::soft_weight() const {
  return scale_ * (at::clamp(floor_ + h() + zero_, qmin_, qmax_) - zero_);
}

at::Tensor SoftRounding::regularizer(double beta) const {
  return (1.0 - (2.0 * h() - 1.0).abs().pow(beta)).sum();
}

std::pair<at::Tensor, at::Tensor> SoftRounding::soft_weight_and_regularizer(double beta) const {
  return soft_round_fused(v_, floor_, scale_full_, zero_full_, qmin_, qmax_, beta);
}

at::Tensor SoftRounding::hard_codes() const {
  at::NoGradGuard no_grad;
  return at::clamp(floor_ + (v_.detach() >= 0).to(at::kFloat) + zero_, qmin_, qmax_);
}

at::Tensor round_ste(const at::Tensor& x) { return x + (at::round(x) - x).detach(); }

at::Tensor fake_quant_ste(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                          double qmin, double qmax) {
  at::Tensor q = at::clamp(round_ste(x / scale) + zero_point, qmin, qmax);
  return (q - zero_point) * scale;
}

at::Tensor reconstruction_loss(const at::Tensor& out, const at::Tensor& target, const at::Tensor& weight, double p) {
  at::Tensor d = p == 2.0 ? (out - target).pow(2) : (out - target).abs().pow(p);
  if (weight.defined()) d = d * weight;
  return d.dim() >= 2 ? d.sum(1).mean() : d.mean();
}

}  // namespace mixq
