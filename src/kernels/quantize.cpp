#include "kernels/quantize.h"

#include "kernels/quantize_impl.h"

#include <algorithm>

namespace mixq::kernels {

void quantize_u8_ref(const float* x, int64_t n, float scale, float zq, float lo, float hi, uint8_t* out) {
  quantize_u8_body(x, n, quant_inv(scale), zq, lo, hi, out);
}

void fake_quantize_f32(const float* x, int64_t n, float scale, float zq, float lo, float hi, float* y) {
  const float inv = quant_inv(scale);
  for (int64_t i = 0; i < n; ++i) y[i] = scale * (std::min(std::max(round_half_even(x[i] * inv) + zq, lo), hi) - zq);
}

void quantize_u8(const float* x, int64_t n, float scale, float zq, float lo, float hi, uint8_t* out, Isa isa) {
  switch (isa) {
    case Isa::kRef: quantize_u8_ref(x, n, scale, zq, lo, hi, out); break;
    case Isa::kAvx2: quantize_u8_avx2(x, n, scale, zq, lo, hi, out); break;
    case Isa::kAvx512: quantize_u8_avx512(x, n, scale, zq, lo, hi, out); break;
  }
}

}  // namespace mixq::kernels
