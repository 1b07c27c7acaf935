// epilogue_f32 / epilogue_u8 compiled for avx2 (see epilogue.h; called only when the CPU has it).
#include "kernels/epilogue_impl.h"

namespace mixq::kernels {

void epilogue_f32_avx2(const EpiRows& e, float* y, int64_t ldy) { epilogue_f32_body(e, y, ldy); }

void epilogue_u8_avx2(const EpiRows& e, const OutQuant& q, uint8_t* y, int64_t ldy) {
  epilogue_u8_body(e, q, y, ldy);
}

}  // namespace mixq::kernels
