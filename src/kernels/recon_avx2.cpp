// The fused reconstruction kernels compiled for avx2 (see recon.h; called only when the CPU has it).
#include "kernels/recon_impl.h"

namespace mixq::kernels {

MIXQ_FQ_DEFINE(avx2)

}  // namespace mixq::kernels
