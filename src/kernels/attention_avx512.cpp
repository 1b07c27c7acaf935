// attention_f32 compiled for avx512 (see attention.h; called only when the CPU has it).
#include "kernels/attention_impl.h"

namespace mixq::kernels {

MIXQ_ATTENTION_BODY(avx512, 16)

}  // namespace mixq::kernels
