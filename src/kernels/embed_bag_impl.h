// The body of embed_add_u8 (embed_bag.h), included once per ISA file (each compiled with its own -m
// flags): one loop the compilers vectorise.
#pragma once

#include "kernels/embed_bag.h"

namespace mixq::kernels {

inline void embed_add_u8_body(const uint8_t* __restrict c, int64_t n, float s, float qmin, float z,
                              float* __restrict dst) {
  for (int64_t t = 0; t < n; ++t) dst[t] += s * (static_cast<float>(c[t]) + qmin - z);
}

}  // namespace mixq::kernels
