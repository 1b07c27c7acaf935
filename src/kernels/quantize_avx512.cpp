// quantize_u8 for AVX-512, by hand (see quantize.h; called only when the CPU has it): 16 values
// per step, the tail masked.
#include <immintrin.h>

#include "kernels/quantize.h"
#include "kernels/requant_avx512.h"

namespace mixq::kernels {

void quantize_u8_avx512(const float* x, int64_t n, float scale, float zq, float lo, float hi, uint8_t* out) {
  const avx512::Requant rq(scale, zq, lo, hi);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = avx512::tail_mask(n - i);
    _mm_mask_storeu_epi8(out + i, k, rq(_mm512_maskz_loadu_ps(k, x + i)));
  }
}

}  // namespace mixq::kernels
