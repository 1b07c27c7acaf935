#include "core/malloc_tuning.h"

#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace mixq {

namespace {
bool g_tuned = false;   // tune_malloc_for_tensors changed the settings
int g_load_depth = 0;   // nested MappedTensorScope
constexpr int kTunedMmapThreshold = 32 << 20;
}  // namespace

bool tune_malloc_for_tensors() {
#if defined(__GLIBC__)
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("MALLOC_TRIM_THRESHOLD_") || std::getenv("MALLOC_MMAP_MAX_"))
    return false;
  // 32 MiB is the largest mmap threshold glibc accepts on 64-bit (HEAP_MAX_SIZE / 2), and blocks
  // above it are common at 224x224 (one batch-32 activation of a mobile net's first layers is
  // 50-150 MB): each was mapped, faulted in page by page and unmapped on every run, 35-40% of
  // the executor's time on MobileNetV2 (perf: exc_page_fault, clear_page). M_MMAP_MAX = 0 serves
  // them from the heap too (glibc still maps when the heap cannot grow, and threads' own arenas
  // map blocks larger than their heaps). The trim threshold keeps up to 1 GiB of freed heap top
  // for reuse instead of returning it after every run.
  const bool a = mallopt(M_MMAP_THRESHOLD, kTunedMmapThreshold) == 1;
  const bool b = mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;
  const bool c = mallopt(M_MMAP_MAX, 0) == 1;
  g_tuned = a && b && c;
  return g_tuned;
#else
  return false;
#endif
}

MappedTensorScope::MappedTensorScope() {
#if defined(__GLIBC__)
  if (g_tuned && g_load_depth++ == 0) {
    mallopt(M_MMAP_MAX, 1 << 16);  // glibc's default count
    mallopt(M_MMAP_THRESHOLD, 256 << 10);
  }
#endif
}

MappedTensorScope::~MappedTensorScope() {
#if defined(__GLIBC__)
  if (g_tuned && --g_load_depth == 0) {
    mallopt(M_MMAP_THRESHOLD, kTunedMmapThreshold);
    mallopt(M_MMAP_MAX, 0);
  }
#endif
}

}  // namespace mixq
