// Which instruction-set path the kernels take. Chosen once per process from the CPU (cpuid), or
// forced with MIXQ_ISA=ref|avx2|avx512 so tests cover every path on one machine. No libtorch.
#pragma once

namespace mixq::kernels {

enum class Isa { kRef = 0, kAvx2 = 1, kAvx512 = 2 };  // kAvx512: AVX-512 F/BW/VL + VNNI

const char* isa_name(Isa isa);
// The best path this CPU supports.
Isa detect_isa();
// MIXQ_ISA when set (a path the CPU lacks, or an unknown name, is a kInvalidArgument error that
// says what this CPU supports), else detect_isa().
Isa default_isa();
// Whether this CPU can run `isa`.
bool isa_supported(Isa isa);

}  // namespace mixq::kernels
