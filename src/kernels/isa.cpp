#include "kernels/isa.h"

#include <cstdlib>
#include <string>

#include "mixq/error.h"

namespace mixq::kernels {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kRef: return "ref";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "?";
}

bool isa_supported(Isa isa) {
  __builtin_cpu_init();
  switch (isa) {
    case Isa::kRef: return true;
    case Isa::kAvx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  }
  return false;
}

Isa detect_isa() {
  if (isa_supported(Isa::kAvx512)) return Isa::kAvx512;
  if (isa_supported(Isa::kAvx2)) return Isa::kAvx2;
  return Isa::kRef;
}

Isa default_isa() {
  const char* env = std::getenv("MIXQ_ISA");
  if (!env || !*env) return detect_isa();
  const std::string s = env;
  for (Isa isa : {Isa::kRef, Isa::kAvx2, Isa::kAvx512}) {
    if (s != isa_name(isa)) continue;
    MIXQ_CHECK(isa_supported(isa), ErrorKind::kInvalidArgument, "MIXQ_ISA=", s, " but this CPU lacks it (best: ",
               isa_name(detect_isa()), ")");
    return isa;
  }
  throw Error(ErrorKind::kInvalidArgument, "MIXQ_ISA='" + s + "' is not one of ref, avx2, avx512");
}

}  // namespace mixq::kernels
