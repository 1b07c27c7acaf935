// The body of quantize_u8, included once per ISA file (each compiled with its own -m flags).
#pragma once

#include "kernels/quantize.h"

#define MIXQ_QUANTIZE_U8_BODY                                                   \
  for (int64_t i = 0; i < n; ++i) {                                             \
    float q = round_half_even(x[i] / scale) + zq;                               \
    q = q < lo ? lo : (q > hi ? hi : q);                                        \
    out[i] = static_cast<uint8_t>(static_cast<int32_t>(q - lo));                \
  }
