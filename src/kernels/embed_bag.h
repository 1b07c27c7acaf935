// An embedding bag's inner loop (runtime/ops_shape.cpp EmbeddingBagOp): one gathered row of 8-bit
// codes dequantized and added into its bag,
//   dst[t] += s * ((float)c[t] + qmin - z)
// in exactly that order of float operations (no FMA contraction: the ISA files are built with
// -ffp-contract=off), so every path gives the bits of Gather then ReduceSum. The reference loop
// runs in baseline x86-64 (SSE2: u8 -> f32 through unpacks, ~1.3 cycles per value); the AVX2 and
// AVX-512 files compile the same body with their own flags. No libtorch.
#pragma once

#include <cstdint>

#include "kernels/isa.h"

namespace mixq::kernels {

void embed_add_u8(const uint8_t* c, int64_t n, float s, float qmin, float z, float* dst, Isa isa);

void embed_add_u8_ref(const uint8_t* c, int64_t n, float s, float qmin, float z, float* dst);
void embed_add_u8_avx2(const uint8_t* c, int64_t n, float s, float qmin, float z, float* dst);
void embed_add_u8_avx512(const uint8_t* c, int64_t n, float s, float qmin, float z, float* dst);

}  // namespace mixq::kernels
