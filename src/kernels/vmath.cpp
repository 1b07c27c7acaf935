#include "kernels/vmath.h"

#include "kernels/vmath_impl.h"

namespace mixq::kernels {

MIXQ_VMATH_BODIES(base)

void exp_f32(const float* x, float* y, int64_t n, Isa isa) {
  switch (isa) {
    case Isa::kRef: exp_f32_base(x, y, n); break;
    case Isa::kAvx2: exp_f32_avx2(x, y, n); break;
    case Isa::kAvx512: exp_f32_avx512(x, y, n); break;
  }
}

void erf_f32(const float* x, float* y, int64_t n, Isa isa) {
  switch (isa) {
    case Isa::kRef: erf_f32_base(x, y, n); break;
    case Isa::kAvx2: erf_f32_avx2(x, y, n); break;
    case Isa::kAvx512: erf_f32_avx512(x, y, n); break;
  }
}

}  // namespace mixq::kernels
