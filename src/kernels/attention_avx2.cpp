// attention_f32 compiled for avx2 (see attention.h; called only when the CPU has it).
#include "kernels/attention_impl.h"

namespace mixq::kernels {

MIXQ_ATTENTION_BODY(avx2, 8)

}  // namespace mixq::kernels
