// Vectorisable exp and erf for the runtime's float ops (Softmax, Erf in GELU): polynomial forms
// written with + - * / only (no FMA contraction: -ffp-contract=off in the ISA files, none in the
// baseline build), so every ISA path gives the same bits; within a few ulp of libm (expf) and
// 1.2e-7 absolute (erf), tested against std::exp / std::erf. No libtorch.
//   exp: x = n ln2 + r (Cody-Waite split of ln2), e^r by a degree-7 Taylor polynomial on
//        |r| <= ln2/2, times 2^n built in the exponent bits; NaN passes, overflow gives inf,
//        results below FLT_MIN are 0.
//   erf: sign(x) (1 - erfc(|x|)), erfc by the Chebyshev fit of Numerical Recipes (6.2), fractional
//        error < 1.2e-7; below |x| = 0.5 the Maclaurin series (1 - erfc would cancel).
#pragma once

#include <cstdint>

#include "kernels/isa.h"

namespace mixq::kernels {

void exp_f32(const float* x, float* y, int64_t n, Isa isa);
void erf_f32(const float* x, float* y, int64_t n, Isa isa);

void exp_f32_base(const float* x, float* y, int64_t n);
void erf_f32_base(const float* x, float* y, int64_t n);
void exp_f32_avx2(const float* x, float* y, int64_t n);
void erf_f32_avx2(const float* x, float* y, int64_t n);
void exp_f32_avx512(const float* x, float* y, int64_t n);
void erf_f32_avx512(const float* x, float* y, int64_t n);

}  // namespace mixq::kernels
