#include "pack/bitpack.h"

#include <cstring>

namespace mixq::pack {

void pack_bits(const uint16_t* codes, int64_t n, int bits, uint8_t* dst) {
  const size_t nbytes = packed_bytes(n, bits);
  if (n == 0) return;  // dst may be null then (an empty vector's data()); memset(nullptr, ...) is UB
  std::memset(dst, 0, nbytes);
  if (bits == 8) {
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<uint8_t>(codes[i]);
    return;
  }
  // Generic path: a 32-bit accumulator flushed a byte at a time (bits <= 16, so at most 23 bits
  // are pending before a flush).
  uint32_t acc = 0;
  int pending = 0;
  size_t out = 0;
  const uint32_t mask = (1u << bits) - 1u;
  for (int64_t i = 0; i < n; ++i) {
    acc |= (uint32_t(codes[i]) & mask) << pending;
    pending += bits;
    while (pending >= 8) {
      dst[out++] = static_cast<uint8_t>(acc);
      acc >>= 8;
      pending -= 8;
    }
  }
  if (pending > 0) dst[out++] = static_cast<uint8_t>(acc);
}

void unpack_bits(const uint8_t* src, int64_t n, int bits, uint16_t* codes) {
  if (bits == 8) {
    for (int64_t i = 0; i < n; ++i) codes[i] = src[i];
    return;
  }
  if (bits == 4) {
    for (int64_t i = 0; i < n; ++i) codes[i] = (src[i >> 1] >> ((i & 1) * 4)) & 0xF;
    return;
  }
  uint32_t acc = 0;
  int have = 0;
  size_t in = 0;
  const uint32_t mask = (1u << bits) - 1u;
  for (int64_t i = 0; i < n; ++i) {
    while (have < bits) {
      acc |= uint32_t(src[in++]) << have;
      have += 8;
    }
    codes[i] = static_cast<uint16_t>(acc & mask);
    acc >>= bits;
    have -= bits;
  }
}

}  // namespace mixq::pack
