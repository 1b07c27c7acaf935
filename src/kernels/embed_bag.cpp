#include "kernels/embed_bag.h"

#include "kernels/embed_bag_impl.h"

namespace mixq::kernels {

void embed_add_u8_ref(const uint8_t* c, int64_t n, float s, float qmin, float z, float* dst) {
  embed_add_u8_body(c, n, s, qmin, z, dst);
}

void embed_add_u8(const uint8_t* c, int64_t n, float s, float qmin, float z, float* dst, Isa isa) {
  switch (isa) {
    case Isa::kRef: embed_add_u8_ref(c, n, s, qmin, z, dst); break;
    case Isa::kAvx2: embed_add_u8_avx2(c, n, s, qmin, z, dst); break;
    case Isa::kAvx512: embed_add_u8_avx512(c, n, s, qmin, z, dst); break;
  }
}

}  // namespace mixq::kernels
