// quantize_u8 compiled for avx2 (see quantize.h; called only when the CPU has it).
#include "kernels/quantize_impl.h"

namespace mixq::kernels {

void quantize_u8_avx2(const float* x, int64_t n, float scale, float zq, float lo, float hi, uint8_t* out) {
  quantize_u8_body(x, n, quant_inv(scale), zq, lo, hi, out);
}

}  // namespace mixq::kernels
