// The executor's fused attention kernel: MatMul(Q, K) [-> Mul|Div by a scalar] -> Softmax(last
// axis) -> MatMul(., V) on kernels::attention_f32 (no [.., lq, lk] score tensor, no BLAS call per
// head). Internal to fusion.cpp, as fusion_kernels.h.
#pragma once

#include <ATen/ATen.h>
#include <omp.h>

#include "exec/fusion.h"
#include "kernels/attention.h"
#include "kernels/isa.h"

namespace mixq::fusion_kernels {

// in: Q [b, h, lq, d] or [h, lq, d]; K [.., d, lk]; V [.., lk, dv] (same leading dims, float32, any
// strides); then ignored extras (the scale's value). `softmax_axis` as the node says it.
class AttentionKernel final : public FusedKernel {
 public:
  AttentionKernel(float scale, bool divide, int64_t softmax_axis)
      : scale_(scale), divide_(divide), axis_(softmax_axis), isa_(kernels::default_isa()) {}

  bool accepts(const std::vector<at::Tensor>& in) const override {
    const at::Tensor &q = in[0], &k = in[1], &v = in[2];
    if (!q.defined() || !k.defined() || !v.defined()) return false;
    const int64_t r = q.dim();
    if ((r != 3 && r != 4) || k.dim() != r || v.dim() != r) return false;
    if (q.scalar_type() != at::kFloat || k.scalar_type() != at::kFloat || v.scalar_type() != at::kFloat) return false;
    if (!q.device().is_cpu() || !k.device().is_cpu() || !v.device().is_cpu()) return false;
    if (at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad())) return false;
    if (axis_ != -1 && axis_ != r - 1) return false;
    for (int64_t d = 0; d < r - 2; ++d)
      if (k.size(d) != q.size(d) || v.size(d) != q.size(d)) return false;  // no broadcasting here
    return k.size(r - 2) == q.size(r - 1) && v.size(r - 2) == k.size(r - 1) && k.size(r - 1) > 0;
  }

  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    const at::Tensor &q = in[0], &k = in[1], &v = in[2];
    const int64_t r = q.dim();
    std::vector<int64_t> shape(q.sizes().begin(), q.sizes().end());
    shape.back() = v.size(r - 1);
    at::Tensor o = at::empty(shape, q.options());
    kernels::AttnArgs a;
    a.batch = r == 4 ? q.size(0) : 1;
    a.heads = q.size(r - 3);
    a.lq = q.size(r - 2);
    a.d = q.size(r - 1);
    a.lk = k.size(r - 1);
    a.dv = v.size(r - 1);
    a.q = view(q);
    a.k = view(k);
    a.v = view(v);
    a.o = o.data_ptr<float>();
    a.scale = scale_;
    a.divide = divide_;
    kernels::attention_f32(a, omp_get_max_threads(), isa_);  // (serial inside a parallel region)
    out[0] = std::move(o);
  }

 private:
  static kernels::AttnView view(const at::Tensor& t) {
    const int64_t r = t.dim();
    kernels::AttnView w;
    w.p = t.data_ptr<float>();
    w.sb = r == 4 ? t.stride(0) : 0;
    w.sh = t.stride(r - 3);
    w.sr = t.stride(r - 2);
    w.sc = t.stride(r - 1);
    return w;
  }
  float scale_;
  bool divide_;
  int64_t axis_;
  kernels::Isa isa_;
};

}  // namespace mixq::fusion_kernels
