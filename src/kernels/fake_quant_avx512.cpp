// The fused reconstruction kernels compiled for avx512 (see fake_quant.h; called only when the CPU has it).
#include "kernels/fake_quant_impl.h"

namespace mixq::kernels {

MIXQ_FQ_DEFINE(avx512)

}  // namespace mixq::kernels
