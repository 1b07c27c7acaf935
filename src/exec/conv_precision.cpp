#include "exec/conv_precision.h"

#include <cstdlib>
#include <string>

namespace mixq {

namespace {
thread_local ConvPrecision g_precision = ConvPrecision::kFloat32;
}

ConvPrecision conv_precision() { return g_precision; }

ConvPrecisionScope::ConvPrecisionScope(ConvPrecision p) : prev_(g_precision) { g_precision = p; }
ConvPrecisionScope::~ConvPrecisionScope() { g_precision = prev_; }

namespace {
bool env_on(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::string(v) != "0";
}
}  // namespace

bool exec_legacy_by_env() { return env_on("MIXQ_EXEC_LEGACY"); }
bool conv_channels_last_enabled() { return !env_on("MIXQ_NO_CHANNELS_LAST") && !exec_legacy_by_env(); }
bool conv_dnnl_enabled() { return conv_channels_last_enabled() && !env_on("MIXQ_NO_DNNL_CONV"); }

namespace {
struct Bf16Features {
  bool amx = false, avx512 = false;
};

Bf16Features bf16_features() {
  Bf16Features f;
#if defined(__x86_64__)
  // CPUID leaf 7: sub-leaf 0 EDX bit 22 = AMX-BF16; sub-leaf 1 EAX bit 5 = AVX512_BF16.
  unsigned a, b, c, d;
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0), "c"(0));
  if (a < 7) return f;
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
  f.amx = (d >> 22) & 1u;
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(1));
  f.avx512 = (a >> 5) & 1u;
#endif
  return f;
}
}  // namespace

bool cpu_has_native_bf16() {
  const Bf16Features f = bf16_features();
  return f.amx || f.avx512;
}

bool cpu_has_amx_bf16() { return bf16_features().amx; }

}  // namespace mixq
