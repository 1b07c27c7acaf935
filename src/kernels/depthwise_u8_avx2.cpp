// depthwise_u8_acc_row's fast body compiled for avx2 (see depthwise_u8.h; called only when the CPU has it).
#include "kernels/depthwise_u8_impl.h"

namespace mixq::kernels {

void depthwise_u8_acc_row_avx2(const uint8_t* a, int32_t za, const int16_t* w, const DepthwiseShape& s,
                               int64_t oy, int32_t* acc) {
  depthwise_u8_acc_body(a, za, w, s, oy, acc);
}

}  // namespace mixq::kernels
