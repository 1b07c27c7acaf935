// The body of gelu_erf_f32 for one ISA (gelu.h), included once per ISA file, on vec_ext.h's types.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/erfc_fit.h"
#include "kernels/gelu.h"
#include "kernels/vec_ext.h"

namespace mixq::kernels::gelu_detail {

using namespace vec_ext;

template <class V, class VI>
static inline V gelu_block(V x, float inv_c) {
  const V u = x * inv_c;
  const V z = u < 0 ? -u : u;
  const V t = 1.0f / (z * 0.5f + 1.0f);
  const V p = erfc_fit_poly(t);
  // (the exponent is <= 3e-8 for every z: vexp_nonpos's range)
  const V e = 1.0f - t * vexp_nonpos<V, VI>(p - z * z);
  const V erf = u < 0 ? -e : e;
  const V h = x * 0.5f;
  return h * erf + h;
}

template <int W>
static void gelu(const float* x, float* y, int64_t n, float c) {
  using vec = vec_t<W>;
  using ivec = ivec_t<W>;
  const float inv_c = 1.0f / c;
  int64_t i = 0;
  for (; i + W <= n; i += W) vst(y + i, gelu_block<vec, ivec>(vld<vec>(x + i), inv_c));
  if (i < n) {  // the tail through one padded block
    float buf[W] = {};
    std::memcpy(buf, x + i, (n - i) * sizeof(float));
    vst(buf, gelu_block<vec, ivec>(vld<vec>(buf), inv_c));
    std::memcpy(y + i, buf, (n - i) * sizeof(float));
  }
}

}  // namespace mixq::kernels::gelu_detail

#define MIXQ_GELU_BODY(ISA, W)                                                  \
  void gelu_erf_f32_##ISA(const float* x, float* y, int64_t n, float c) {      \
    gelu_detail::gelu<W>(x, y, n, c);                                           \
  }
