#include "core/runtime_env.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace mixq {
namespace {

bool env_set(const char* name) {
  const char* v = std::getenv(name);
  return v && *v;
}

// Whether fewer than half the cores have another runnable task right now (false when unknown).
bool machine_idle() {
  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  FILE* f = std::fopen("/proc/loadavg", "r");
  if (!f || cores <= 0) {
    if (f) std::fclose(f);
    return false;
  }
  double l1 = 0, l5 = 0, l15 = 0;
  long running = 0, total = 0;
  const int got = std::fscanf(f, "%lf %lf %lf %ld/%ld", &l1, &l5, &l15, &running, &total);
  std::fclose(f);
  return got == 5 && static_cast<double>(running - 1) < 0.5 * static_cast<double>(cores);  // minus this process
}

std::vector<std::pair<std::string, std::string>> wanted() {
  std::vector<std::pair<std::string, std::string>> out;
  if (env_set("MIXQ_NO_RUNTIME_ENV") && std::string(std::getenv("MIXQ_NO_RUNTIME_ENV")) != "0") return out;
  if (!env_set("OPENBLAS_CORETYPE")) {
    // OpenBLAS's own report of the kernels it picked (absent when BLAS is not OpenBLAS).
    using CoreName = char* (*)();
    if (auto fn = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"))) {
      const char* core = fn();
      const bool sse_only = core && (!strcasecmp(core, "Prescott") || !strcasecmp(core, "Core2") ||
                                     !strcasecmp(core, "Penryn") || !strcasecmp(core, "Nehalem") ||
                                     !strcasecmp(core, "Katmai") || !strcasecmp(core, "Unknown"));
#if defined(__x86_64__)
      if (sse_only) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
          out.emplace_back("OPENBLAS_CORETYPE", "SkylakeX");
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
          out.emplace_back("OPENBLAS_CORETYPE", "Haswell");
      }
#endif
    }
  }
  if (!env_set("OMP_WAIT_POLICY") && !env_set("GOMP_SPINCOUNT")) {
    // Spinning at OpenMP barriers: on an idle machine it is what makes the second core pay (the
    // fixtures at batch 32 / 2 threads ran 2-3x slower passive than active, BENCHMARKS "Executor vs
    // ONNX Runtime on the fixtures, quiet machine"); on a busy one a spinner burns the slice of the
    // thread it waits for (mobilenet_v3_small at load ~7: 11-64 img/s spinning vs 175-255 passive).
    // So: active when the machine is idle as the job starts (other runnable tasks, from
    // /proc/loadavg's "running/total" field, fewer than half the cores; the load averages lag by
    // minutes), passive otherwise. A setting of the user's wins.
    out.emplace_back("OMP_WAIT_POLICY", machine_idle() ? "ACTIVE" : "PASSIVE");
  }
  return out;
}

}  // namespace

const char* runtime_env_changes() {
  static const std::string s = [] {
    if (const char* done = std::getenv("MIXQ_RUNTIME_ENV_DONE")) return std::string(done);
    std::string r;
    for (const auto& [k, v] : wanted()) r += (r.empty() ? "" : " ") + k + "=" + v;
    return r;
  }();
  return s.c_str();
}

void reexec_with_runtime_env(char** argv) {
  if (std::getenv("MIXQ_RUNTIME_ENV_DONE")) return;
  auto changes = wanted();
  if (changes.empty()) return;
  std::string list;
  for (const auto& [k, v] : changes) {
    setenv(k.c_str(), v.c_str(), 0);
    list += (list.empty() ? "" : " ") + k + "=" + v;
  }
  setenv("MIXQ_RUNTIME_ENV_DONE", list.c_str(), 1);
  execv("/proc/self/exe", argv);
  // execv failed (no /proc?): run on with the libraries' defaults.
}

}  // namespace mixq
