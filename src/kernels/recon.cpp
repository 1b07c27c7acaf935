#include "kernels/recon.h"

#include "kernels/recon_impl.h"

namespace mixq::kernels {

MIXQ_FQ_DEFINE(ref)

void fq_forward(const float* x, int64_t n, FqParams p, float* y, Isa isa) {
  switch (isa) {
    case Isa::kRef: return fq_forward_ref(x, n, p, y);
    case Isa::kAvx2: return fq_forward_avx2(x, n, p, y);
    case Isa::kAvx512: return fq_forward_avx512(x, n, p, y);
  }
}

double fq_backward(const float* x, const float* g, int64_t n, FqParams p, float* gx, Isa isa) {
  switch (isa) {
    case Isa::kRef: return fq_backward_ref(x, g, n, p, gx);
    case Isa::kAvx2: return fq_backward_avx2(x, g, n, p, gx);
    case Isa::kAvx512: return fq_backward_avx512(x, g, n, p, gx);
  }
  return 0;
}

double sq_err(const float* a, const float* b, const float* w, int64_t n, Isa isa) {
  switch (isa) {
    case Isa::kRef: return sq_err_ref(a, b, w, n);
    case Isa::kAvx2: return sq_err_avx2(a, b, w, n);
    case Isa::kAvx512: return sq_err_avx512(a, b, w, n);
  }
  return 0;
}

void sq_err_grad(const float* a, const float* b, const float* w, int64_t n, float c, float* ga, Isa isa) {
  switch (isa) {
    case Isa::kRef: return sq_err_grad_ref(a, b, w, n, c, ga);
    case Isa::kAvx2: return sq_err_grad_avx2(a, b, w, n, c, ga);
    case Isa::kAvx512: return sq_err_grad_avx512(a, b, w, n, c, ga);
  }
}

void adam_step(float* p, const float* g, float* m, float* v, int64_t n, const AdamStep& a, Isa isa) {
  switch (isa) {
    case Isa::kRef: return adam_step_ref(p, g, m, v, n, a);
    case Isa::kAvx2: return adam_step_avx2(p, g, m, v, n, a);
    case Isa::kAvx512: return adam_step_avx512(p, g, m, v, n, a);
  }
}

void soft_round_forward(const float* sg, int64_t n, const SoftRoundParams& p, float* w, float* a, Isa isa) {
  switch (isa) {
    case Isa::kRef: return soft_round_forward_ref(sg, n, p, w, a);
    case Isa::kAvx2: return soft_round_forward_avx2(sg, n, p, w, a);
    case Isa::kAvx512: return soft_round_forward_avx512(sg, n, p, w, a);
  }
}

void soft_round_backward(const float* sg, const float* gw, const float* a, const float* ab, int64_t n,
                         const SoftRoundParams& p, float greg_beta, float* gv, Isa isa) {
  switch (isa) {
    case Isa::kRef: return soft_round_backward_ref(sg, gw, a, ab, n, p, greg_beta, gv);
    case Isa::kAvx2: return soft_round_backward_avx2(sg, gw, a, ab, n, p, greg_beta, gv);
    case Isa::kAvx512: return soft_round_backward_avx512(sg, gw, a, ab, n, p, greg_beta, gv);
  }
}

}  // namespace mixq::kernels
