// gelu_erf_f32 compiled for avx512 (see gelu.h; called only when the CPU has it).
#include "kernels/gelu_impl.h"

namespace mixq::kernels {

MIXQ_GELU_BODY(avx512, 16)

}  // namespace mixq::kernels
