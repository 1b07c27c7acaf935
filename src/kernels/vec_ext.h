// GCC vector-extension helpers shared by the float kernels written once for every ISA
// (attention_impl.h, gelu_impl.h): a block of W floats is one value of the ISA's register width
// (16 on AVX-512, 8 on AVX2, 4 on the baseline's SSE2), so one source keeps tiles in registers on
// every path. Everything here is `static`: each ISA file must keep its own copy (one shared
// across files compiled with different -m flags could be merged into the AVX-512 one by the linker).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace mixq::kernels::vec_ext {

typedef float v4f __attribute__((vector_size(16)));
typedef float v8f __attribute__((vector_size(32)));
typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v4i __attribute__((vector_size(16)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef int32_t v16i __attribute__((vector_size(64)));

template <int W>
using vec_t = std::conditional_t<W == 16, v16f, std::conditional_t<W == 8, v8f, v4f>>;
template <int W>
using ivec_t = std::conditional_t<W == 16, v16i, std::conditional_t<W == 8, v8i, v4i>>;

template <class V>
static inline V vld(const float* p) {
  V r;
  std::memcpy(&r, p, sizeof r);
  return r;
}
template <class V>
static inline void vst(float* p, V v) {
  std::memcpy(p, &v, sizeof v);
}

// Lane maximum / sum by halving (log2 W vector steps instead of W scalar ones).
static inline float hmax(v4f v) {
  const float a = std::max(v[0], v[2]), b = std::max(v[1], v[3]);
  return std::max(a, b);
}
static inline float hmax(v8f v) {
  v4f lo, hi;
  std::memcpy(&lo, &v, 16);
  std::memcpy(&hi, reinterpret_cast<const char*>(&v) + 16, 16);
  return hmax(lo > hi ? lo : hi);
}
static inline float hmax(v16f v) {
  v8f lo, hi;
  std::memcpy(&lo, &v, 32);
  std::memcpy(&hi, reinterpret_cast<const char*>(&v) + 32, 32);
  return hmax(lo > hi ? lo : hi);
}
static inline float hsum(v4f v) { return (v[0] + v[2]) + (v[1] + v[3]); }
static inline float hsum(v8f v) {
  v4f lo, hi;
  std::memcpy(&lo, &v, 16);
  std::memcpy(&hi, reinterpret_cast<const char*>(&v) + 16, 16);
  return hsum(lo + hi);
}
static inline float hsum(v16f v) {
  v8f lo, hi;
  std::memcpy(&lo, &v, 32);
  std::memcpy(&hi, reinterpret_cast<const char*>(&v) + 32, 32);
  return hsum(lo + hi);
}

// e^x on a whole vector for x <= ~0 (a softmax's score minus its row max; erfc's exponent), -inf
// (gives 0) or NaN (passes): the method of vmath.h's exp (Cody-Waite split of ln2, 2^n built in the
// exponent bits) without its upper range (no overflow path; n >= -126 keeps 2^n one normal float,
// no two-step scale), with a degree-6 Taylor polynomial on |r| <= ln2/2 (truncation < 1.3e-7
// relative): half the vector operations of the general exp. Small positive x (|x| < 1) are fine.
template <class V, class VI>
static inline V vexp_nonpos(V x) {
  const V lo = V{} - 87.33654f;  // e^lo ~ FLT_MIN; below it the result is 0
  const V cl = x < lo ? lo : x;
  const V c = cl != cl ? V{} : cl;  // NaN: computed on 0 (no float-to-int conversion of NaN), passed below
  const V n = (c * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  V r = c - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  V p = V{} + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const V s = reinterpret_cast<V>((__builtin_convertvector(n, VI) + 127) << 23);
  const V y = p * s;
  return x != x ? x : (x < lo ? V{} : y);
}

}  // namespace mixq::kernels::vec_ext
