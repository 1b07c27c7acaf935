// GELU in its erf form, y = (x * (erf(x / c) + 1)) * 0.5 (c = sqrt(2) in torch's export), on
// float arrays: the runtime's fused GELU chain (runtime/fuse_chains.h). One pass, everything in
// registers: erf(|u|) = 1 - t e^(-u^2 + P(t)), t = 1 / (1 + |u|/2), the Chebyshev fit of Numerical
// Recipes (6.2) that vmath.h's erf uses (fractional error of erfc < 1.2e-7), with vec_ext.h's exp
// inline. GELU adds erf to 1, so only its absolute error matters: the small-|u| series that the
// Erf op needs for its relative accuracy near 0 (1 - erfc cancels there) is not needed here, and
// the ISA paths contract to FMA. Tested against the scalar reference (std::erf in double) within a
// tolerance, not bit for bit. No libtorch.
#pragma once

#include <cstdint>

#include "kernels/isa.h"

namespace mixq::kernels {

void gelu_erf_f32(const float* x, float* y, int64_t n, float c, Isa isa);
// The scalar reference: (x * (erf(x / c) + 1)) * 0.5 in double, rounded once.
void gelu_erf_f32_ref(const float* x, float* y, int64_t n, float c);

void gelu_erf_f32_base(const float* x, float* y, int64_t n, float c);
void gelu_erf_f32_avx2(const float* x, float* y, int64_t n, float c);
void gelu_erf_f32_avx512(const float* x, float* y, int64_t n, float c);

}  // namespace mixq::kernels
