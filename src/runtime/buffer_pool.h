// The memory of values that died during Model::run, kept for the outputs of later ops and later
// runs: without it each large output is a fresh allocation, which glibc serves by mmap above its
// threshold, so every op of a batch-64 run paid page faults and zeroing (~30% of a batch-64 fp32
// run of mobilenet_v2-224, perf). Buffers handed out are not zeroed: only ops that write every
// element of their output take them. No libtorch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "runtime/tensor.h"

namespace mixq::rt {

class BufferPool {
 public:
  // n elements, contents unspecified.
  std::vector<float> floats(size_t n) { return take(f_, n); }
  std::vector<uint8_t> bytes(size_t n) { return take(u8_, n); }
  // Keeps t's float and code buffers (t is left empty).
  void give(Tensor&& t) {
    keep(f_, std::move(t.f));
    keep(u8_, std::move(t.u8));
    t = Tensor{};
  }

 private:
  static constexpr size_t kMaxBuffers = 32;  // per element type: more than a graph has alive at once

  // The buffer whose size is the smallest >= n (shrinking it writes nothing); else the largest whose
  // capacity fits n (only the grown tail is written); else a new one.
  template <typename T>
  static std::vector<T> take(std::vector<std::vector<T>>& pool, size_t n) {
    size_t best = pool.size();
    for (size_t i = 0; i < pool.size(); ++i)
      if (pool[i].size() >= n && (best == pool.size() || pool[i].size() < pool[best].size())) best = i;
    if (best == pool.size())
      for (size_t i = 0; i < pool.size(); ++i)
        if (pool[i].capacity() >= n && (best == pool.size() || pool[i].size() > pool[best].size())) best = i;
    std::vector<T> v;
    if (best < pool.size()) {
      v.swap(pool[best]);
      pool.erase(pool.begin() + static_cast<std::ptrdiff_t>(best));
    }
    v.resize(n);
    return v;
  }

  template <typename T>
  static void keep(std::vector<std::vector<T>>& pool, std::vector<T>&& v) {
    if (v.capacity() < 4096) return;  // small ones cost nothing to allocate
    if (pool.size() == kMaxBuffers) {  // drop the smallest
      size_t s = 0;
      for (size_t i = 1; i < pool.size(); ++i)
        if (pool[i].capacity() < pool[s].capacity()) s = i;
      pool.erase(pool.begin() + static_cast<std::ptrdiff_t>(s));
    }
    pool.push_back(std::move(v));
  }

  std::vector<std::vector<float>> f_;
  std::vector<std::vector<uint8_t>> u8_;
};

}  // namespace mixq::rt
