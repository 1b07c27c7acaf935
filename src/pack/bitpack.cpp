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

namespace {

template <int B>
void unpack8(const uint8_t* src, int64_t n, uint8_t* codes) {
  constexpr uint64_t kMask = (uint64_t{1} << B) - 1;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8, src += B) {  // 8 codes are exactly B bytes
    // Little-endian: code j at bit j * B, as pack_bits writes them. One 8-byte load where the codes
    // still hold 8 bytes (a B-byte memcpy into w stalls on store forwarding), else byte by byte.
    uint64_t w = 0;
    if ((n - i) * B >= 64) {
      std::memcpy(&w, src, 8);
    } else {
      for (int b = 0; b < B; ++b) w |= uint64_t{src[b]} << (8 * b);
    }
    for (int j = 0; j < 8; ++j) codes[i + j] = static_cast<uint8_t>((w >> (j * B)) & kMask);
  }
  for (int64_t j = 0; i < n; ++i, ++j) codes[i] = static_cast<uint8_t>(unpack_one(src, j, B));
}

}  // namespace

void unpack_bits_u8(const uint8_t* src, int64_t n, int bits, uint8_t* codes) {
  switch (bits) {
    case 1: return unpack8<1>(src, n, codes);
    case 2: return unpack8<2>(src, n, codes);
    case 3: return unpack8<3>(src, n, codes);
    case 4: {  // two codes per byte, low nibble first: a loop the compiler vectorises
      const int64_t pairs = n / 2;
      for (int64_t i = 0; i < pairs; ++i) {
        codes[2 * i] = src[i] & 15u;
        codes[2 * i + 1] = static_cast<uint8_t>(src[i] >> 4);
      }
      if (n & 1) codes[n - 1] = src[pairs] & 15u;
      return;
    }
    case 5: return unpack8<5>(src, n, codes);
    case 6: return unpack8<6>(src, n, codes);
    case 7: return unpack8<7>(src, n, codes);
    case 8: std::memcpy(codes, src, static_cast<size_t>(n)); return;
    default: break;
  }
  for (int64_t i = 0; i < n; ++i) codes[i] = static_cast<uint8_t>(unpack_one(src, i, bits));  // (not reached: bits <= 8)
}

}  // namespace mixq::pack
