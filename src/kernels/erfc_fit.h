// The Chebyshev fit of erfc from Numerical Recipes (6.2), shared by the Erf op's kernel
// (vmath_impl.h) and the fused GELU (gelu_impl.h): erfc(z) = t e^(-z^2 + P(t)), t = 1 / (1 + z/2),
// z >= 0, fractional error < 1.2e-7. P by Horner on any arithmetic type (float or a GCC vector):
// the same operations in the same order everywhere, each file rounding as its flags say.
#pragma once

namespace mixq::kernels {

template <class T>
static inline T erfc_fit_poly(T t) {
  T p = T{} + 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  return p;
}

}  // namespace mixq::kernels
