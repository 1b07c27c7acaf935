#include "kernels/quantize.h"

#include "kernels/quantize_impl.h"

namespace mixq::kernels {

void quantize_u8_ref(const float* x, int64_t n, float scale, float zq, float lo, float hi, uint8_t* out) {
  quantize_u8_body(x, n, quant_inv(scale), zq, lo, hi, out);
}

void quantize_u8(const float* x, int64_t n, float scale, float zq, float lo, float hi, uint8_t* out, Isa isa) {
  switch (isa) {
    case Isa::kRef: quantize_u8_ref(x, n, scale, zq, lo, hi, out); break;
    case Isa::kAvx2: quantize_u8_avx2(x, n, scale, zq, lo, hi, out); break;
    case Isa::kAvx512: quantize_u8_avx512(x, n, scale, zq, lo, hi, out); break;
  }
}

}  // namespace mixq::kernels
