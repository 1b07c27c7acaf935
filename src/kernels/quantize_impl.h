// The bodies of quantize_u8, included once per ISA file (each compiled with its own -m flags):
// one loop, x * inv rounded half to even (quantize.h), which compilers vectorise.
#pragma once

#include "kernels/quantize.h"

namespace mixq::kernels {

// Codes of n values; `inv` = quant_inv(scale).
inline void quantize_u8_body(const float* __restrict x, int64_t n, float inv, float zq, float lo, float hi,
                             uint8_t* __restrict out) {
  for (int64_t i = 0; i < n; ++i) {
    float q = round_half_even(x[i] * inv) + zq;
    // NaN -> lo (code 0, what the vector conversion gave it before): a NaN cast to int32 is
    // undefined behaviour (UBSan, fuzzing .mxq files with NaN weights). Other values unchanged.
    q = q >= lo ? (q > hi ? hi : q) : lo;
    out[i] = static_cast<uint8_t>(static_cast<int32_t>(q - lo));
  }
}

}  // namespace mixq::kernels
