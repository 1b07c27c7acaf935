// embed_add_u8 compiled for avx2 (see embed_bag.h; called only when the CPU has it).
#include "kernels/embed_bag_impl.h"

namespace mixq::kernels {

void embed_add_u8_avx2(const uint8_t* c, int64_t n, float s, float qmin, float z, float* dst) {
  embed_add_u8_body(c, n, s, qmin, z, dst);
}

}  // namespace mixq::kernels
