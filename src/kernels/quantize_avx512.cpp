// quantize_u8 compiled for avx512 (see quantize.h; called only when the CPU has it).
#include "kernels/quantize_impl.h"

namespace mixq::kernels {

void quantize_u8_avx512(const float* x, int64_t n, float scale, float zq, float lo, float hi, uint8_t* out) {
  MIXQ_QUANTIZE_U8_BODY
}

}  // namespace mixq::kernels
