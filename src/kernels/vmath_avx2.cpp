// exp_f32 / erf_f32 compiled for avx2 (see vmath.h; called only when the CPU has it).
#include "kernels/vmath_impl.h"

namespace mixq::kernels {

MIXQ_VMATH_BODIES(avx2)

}  // namespace mixq::kernels
