#include "kernels/gelu.h"

#include <cmath>

#include "kernels/gelu_impl.h"

namespace mixq::kernels {

MIXQ_GELU_BODY(base, 4)

void gelu_erf_f32(const float* x, float* y, int64_t n, float c, Isa isa) {
  switch (isa) {
    case Isa::kRef: gelu_erf_f32_base(x, y, n, c); break;
    case Isa::kAvx2: gelu_erf_f32_avx2(x, y, n, c); break;
    case Isa::kAvx512: gelu_erf_f32_avx512(x, y, n, c); break;
  }
}

void gelu_erf_f32_ref(const float* x, float* y, int64_t n, float c) {
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    y[i] = static_cast<float>(v * (std::erf(v / c) + 1.0) * 0.5);
  }
}

}  // namespace mixq::kernels
