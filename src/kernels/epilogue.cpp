#include "kernels/epilogue.h"

#include "kernels/epilogue_impl.h"

namespace mixq::kernels {

void epilogue_f32_ref(const EpiRows& e, float* y, int64_t ldy) { epilogue_f32_body(e, y, ldy); }

void epilogue_u8_ref(const EpiRows& e, const OutQuant& q, uint8_t* y, int64_t ldy) {
  epilogue_u8_body(e, q, y, ldy);
}

void epilogue_f32(const EpiRows& e, float* y, int64_t ldy, Isa isa) {
  switch (isa) {
    case Isa::kRef: epilogue_f32_ref(e, y, ldy); break;
    case Isa::kAvx2: epilogue_f32_avx2(e, y, ldy); break;
    case Isa::kAvx512: epilogue_f32_avx512(e, y, ldy); break;
  }
}

void epilogue_u8(const EpiRows& e, const OutQuant& q, uint8_t* y, int64_t ldy, Isa isa) {
  switch (isa) {
    case Isa::kRef: epilogue_u8_ref(e, q, y, ldy); break;
    case Isa::kAvx2: epilogue_u8_avx2(e, q, y, ldy); break;
    case Isa::kAvx512: epilogue_u8_avx512(e, q, y, ldy); break;
  }
}

void row_sums_u8_ref(const uint8_t* a, int64_t m, int64_t k, int64_t lda, int32_t* out) {
  for (int64_t i = 0; i < m; ++i) {
    int32_t s = 0;
    for (int64_t q = 0; q < k; ++q) s += a[i * lda + q];
    out[i] = s;
  }
}

void row_sums_u8(const uint8_t* a, int64_t m, int64_t k, int64_t lda, int32_t* out, Isa isa) {
  if (isa == Isa::kAvx512) row_sums_u8_avx512(a, m, k, lda, out);
  else row_sums_u8_ref(a, m, k, lda, out);
}

}  // namespace mixq::kernels
