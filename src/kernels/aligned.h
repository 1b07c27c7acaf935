// std::vector with 64-byte aligned storage: buffers that AVX-512 kernels read and write a cache line
// at a time (malloc's 16-byte alignment splits every 64-byte access over two lines). No libtorch.
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace mixq::kernels {

template <typename T>
struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <typename U>
  Aligned64(const Aligned64<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64))); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t(64)); }
  template <typename U>
  bool operator==(const Aligned64<U>&) const { return true; }
  template <typename U>
  bool operator!=(const Aligned64<U>&) const { return false; }
};

template <typename T>
using avector = std::vector<T, Aligned64<T>>;

}  // namespace mixq::kernels
