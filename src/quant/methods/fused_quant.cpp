#include "quant/methods/fused_quant.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

#include "kernels/recon.h"
#include "quant/methods/soft_quant.h"

namespace mixq {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

kernels::Isa isa() {
  static const kernels::Isa i = kernels::default_isa();
  return i;
}

bool dense_float(const at::Tensor& t) {
  return t.defined() && t.scalar_type() == at::kFloat && t.is_non_overlapping_and_dense();
}

// `t` with the strides of `like` (same shape), so both can be walked as flat arrays.
at::Tensor strided_like(const at::Tensor& t, const at::Tensor& like) {
  if (t.strides() == like.strides() && t.is_non_overlapping_and_dense()) return t;
  return at::empty_like(like).copy_(t);
}

// Fixed chunks (independent of the thread count) run in parallel; their partial sums are added in
// chunk order, so a sum is the same for any --threads.
constexpr int64_t kChunk = 1 << 15;

template <typename F>
double chunked_sum(int64_t n, F f) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part(static_cast<size_t>(chunks), 0.0);
  at::parallel_for(0, chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      const int64_t lo = c * kChunk;
      part[static_cast<size_t>(c)] = f(lo, std::min(n, lo + kChunk) - lo);
    }
  });
  double s = 0;
  for (double p : part) s += p;
  return s;
}

struct FakeQuantFn : torch::autograd::Function<FakeQuantFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& scale, double z, double lo,
                            double hi) {
    const kernels::FqParams p{scale.item<float>(), static_cast<float>(z), static_cast<float>(lo), static_cast<float>(hi)};
    at::Tensor y = at::empty_like(x);
    const float* xp = x.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    chunked_sum(x.numel(), [&](int64_t b, int64_t n) {
      kernels::fq_forward(xp + b, n, p, yp + b, isa());
      return 0.0;
    });
    ctx->save_for_backward({x, scale});
    ctx->saved_data["z"] = z;
    ctx->saved_data["lo"] = lo;
    ctx->saved_data["hi"] = hi;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& scale = saved[1];
    const kernels::FqParams p{scale.item<float>(), static_cast<float>(ctx->saved_data["z"].toDouble()),
                              static_cast<float>(ctx->saved_data["lo"].toDouble()),
                              static_cast<float>(ctx->saved_data["hi"].toDouble())};
    at::Tensor g = strided_like(grads[0].to(at::kFloat), x);
    const bool want_x = ctx->needs_input_grad(0), want_s = ctx->needs_input_grad(1);
    at::Tensor gx = want_x ? at::empty_like(x) : at::Tensor();
    const float* xp = x.data_ptr<float>();
    const float* gp = g.data_ptr<float>();
    float* gxp = want_x ? gx.data_ptr<float>() : nullptr;
    const double gs = chunked_sum(x.numel(), [&](int64_t b, int64_t n) {
      return kernels::fq_backward(xp + b, gp + b, n, p, gxp ? gxp + b : nullptr, isa());
    });
    at::Tensor gscale = want_s ? at::full(scale.sizes(), gs, scale.options()) : at::Tensor();
    return {gx, gscale, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// A tensor argument autograd must not track (apply() rejects undefined tensor inputs).
struct Untracked {
  at::Tensor t;
};

struct ReconLossFn : torch::autograd::Function<ReconLossFn> {
  // target / weight already have out's strides; weight may be undefined.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& out, const at::Tensor& target, Untracked wt) {
    const at::Tensor& weight = wt.t;
    const int64_t n = out.numel();
    const double denom = out.dim() >= 2 ? static_cast<double>(n / std::max<int64_t>(1, out.size(1)))
                                        : static_cast<double>(n);
    const float* a = out.data_ptr<float>();
    const float* t = target.data_ptr<float>();
    const float* w = weight.defined() ? weight.data_ptr<float>() : nullptr;
    const double s = chunked_sum(n, [&](int64_t b, int64_t m) { return kernels::sq_err(a + b, t + b, w ? w + b : nullptr, m, isa()); });
    ctx->save_for_backward({out, target});
    ctx->saved_data["w"] = weight;
    ctx->saved_data["denom"] = denom;
    return at::scalar_tensor(s / std::max(1.0, denom), out.options());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& out = saved[0];
    const at::Tensor& target = saved[1];
    const at::Tensor weight = ctx->saved_data["w"].toTensor();
    const double denom = std::max(1.0, ctx->saved_data["denom"].toDouble());
    const float c = static_cast<float>(2.0 * grads[0].item<double>() / denom);
    at::Tensor go = at::empty_like(out);
    const float* a = out.data_ptr<float>();
    const float* t = target.data_ptr<float>();
    const float* w = weight.defined() ? weight.data_ptr<float>() : nullptr;
    float* gp = go.data_ptr<float>();
    chunked_sum(out.numel(), [&](int64_t b, int64_t m) {
      kernels::sq_err_grad(a + b, t + b, w ? w + b : nullptr, m, c, gp + b, isa());
      return 0.0;
    });
    return {go, at::Tensor(), at::Tensor()};
  }
};

kernels::SoftRoundParams soft_params(const at::Tensor& floor, const at::Tensor& scale, const at::Tensor& zero,
                                     double qmin, double qmax) {
  kernels::SoftRoundParams p;
  p.floor = floor.data_ptr<float>();
  p.scale = scale.data_ptr<float>();
  p.zero = zero.data_ptr<float>();
  p.lo = static_cast<float>(qmin);
  p.hi = static_cast<float>(qmax);
  p.zeta_minus_gamma = static_cast<float>(SoftRounding::kZeta - SoftRounding::kGamma);
  p.gamma = static_cast<float>(SoftRounding::kGamma);
  return p;
}

struct SoftRoundFn : torch::autograd::Function<SoftRoundFn> {
  // Returns {W~, reg} (reg: 0-d, 0 when beta <= 0). floor/scale/zero: contiguous, v's shape.
  static variable_list forward(AutogradContext* ctx, const at::Tensor& v, const at::Tensor& floor,
                               const at::Tensor& scale, const at::Tensor& zero, double qmin, double qmax,
                               double beta) {
    at::Tensor sg = at::sigmoid(v);  // libtorch's vectorised exp; the rest is one fused loop
    at::Tensor w = at::empty_like(v), a = at::empty_like(v);
    kernels::SoftRoundParams p = soft_params(floor, scale, zero, qmin, qmax);
    // a below a_min has a^beta < 1e-30: stored as 0 (no denormals; the sum cannot tell).
    p.a_min = beta > 0 ? static_cast<float>(std::pow(1e-30, 1.0 / beta)) : 0.0f;
    kernels::soft_round_forward(sg.data_ptr<float>(), v.numel(), p, w.data_ptr<float>(), a.data_ptr<float>(), isa());
    at::Tensor reg = at::zeros({}, v.options()), ab;
    if (beta > 0) {
      // a^beta as exp2(beta log2 a): two vectorised ops, where at::pow with a non-integer scalar
      // exponent runs libm's scalar pow (~3 ns per element); log2(0) = -inf gives exactly 0.
      ab = at::exp2(at::log2(a).mul_(beta));
      reg = at::scalar_tensor(static_cast<double>(v.numel()) - ab.sum().item<double>(), v.options());
    }
    ctx->save_for_backward({sg, floor, scale, zero, a});
    ctx->saved_data["ab"] = ab;
    ctx->saved_data["lo"] = qmin;
    ctx->saved_data["hi"] = qmax;
    ctx->saved_data["beta"] = beta;
    return {w, reg};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto s = ctx->get_saved_variables();
    const at::Tensor &sg = s[0], &a = s[4];
    const at::Tensor ab = ctx->saved_data["ab"].toTensor();
    const double beta = ctx->saved_data["beta"].toDouble();
    at::Tensor gw = grads[0].defined() ? grads[0].to(at::kFloat).contiguous() : at::zeros_like(sg);
    const bool reg = ab.defined() && grads[1].defined();
    const float greg_beta = reg ? static_cast<float>(grads[1].item<double>() * beta) : 0.0f;
    at::Tensor gv = at::empty_like(sg);
    kernels::soft_round_backward(
        sg.data_ptr<float>(), gw.data_ptr<float>(), a.data_ptr<float>(), reg ? ab.data_ptr<float>() : nullptr,
        sg.numel(),
        soft_params(s[1], s[2], s[3], ctx->saved_data["lo"].toDouble(), ctx->saved_data["hi"].toDouble()),
        greg_beta, gv.data_ptr<float>(), isa());
    return {gv, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor fake_quant_fused(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point, double qmin,
                            double qmax) {
  const bool fast = dense_float(x) && scale.defined() && scale.numel() == 1 && scale.scalar_type() == at::kFloat &&
                    zero_point.defined() && zero_point.numel() == 1 && !zero_point.requires_grad();
  if (!fast) return fake_quant_ste(x, scale, zero_point, qmin, qmax);
  return FakeQuantFn::apply(x, scale.reshape({}), zero_point.item<double>(), qmin, qmax);
}

at::Tensor reconstruction_loss_fused(const at::Tensor& out, const at::Tensor& target, const at::Tensor& weight,
                                     double p) {
  const bool fast = p == 2.0 && dense_float(out) && target.defined() && target.sizes() == out.sizes() &&
                    target.scalar_type() == at::kFloat && !target.requires_grad() &&
                    (!weight.defined() || (weight.sizes() == out.sizes() && weight.scalar_type() == at::kFloat &&
                                           !weight.requires_grad()));
  if (!fast) return reconstruction_loss(out, target, weight, p);
  return ReconLossFn::apply(out, strided_like(target, out),
                            Untracked{weight.defined() ? strided_like(weight, out) : weight});
}

std::pair<at::Tensor, at::Tensor> soft_round_fused(const at::Tensor& v, const at::Tensor& floor,
                                                   const at::Tensor& scale, const at::Tensor& zero, double qmin,
                                                   double qmax, double beta) {
  auto r = SoftRoundFn::apply(v, floor, scale, zero, qmin, qmax, beta);
  return {r[0], beta > 0 ? r[1] : at::Tensor()};
}

}  // namespace mixq
