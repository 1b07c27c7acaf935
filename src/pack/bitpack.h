// Bit packing of unsigned integer codes: the storage form of low-bit weights in .mxq files.
// No libtorch.
//
// Layout: element i occupies bits [i * bits, (i + 1) * bits) of a little-endian bit stream,
// least significant bit first (byte j holds stream bits 8j .. 8j+7, bit 0 = LSB). The last byte is
// zero-padded. 2, 4 and 8 bits never straddle a byte; 3, 5, 6 do, and are read through a 16-bit
// window. Codes are unsigned: a signed grid [qmin, qmax] is stored as q - qmin.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mixq::pack {

// Bytes needed for n codes of `bits` bits (1..16).
inline size_t packed_bytes(int64_t n, int bits) { return static_cast<size_t>((n * bits + 7) / 8); }

// Packs n codes (each < 2^bits, not checked beyond an assert in debug builds) into dst
// (packed_bytes(n, bits) bytes, fully written including the padding bits).
void pack_bits(const uint16_t* codes, int64_t n, int bits, uint8_t* dst);

// Unpacks n codes from src (packed_bytes(n, bits) bytes). Inverse of pack_bits.
void unpack_bits(const uint8_t* src, int64_t n, int bits, uint16_t* codes);

// unpack_bits for bits <= 8 into bytes, eight codes (`bits` bytes) at a time with constant shifts:
// the runtime's embedding rows (ops_shape.cpp). Same codes as unpack_bits (tested).
void unpack_bits_u8(const uint8_t* src, int64_t n, int bits, uint8_t* codes);

// Code i alone (random access; the runtime's embedding lookups use it).
inline uint32_t unpack_one(const uint8_t* src, int64_t i, int bits) {
  const int64_t bit = i * bits;
  const uint8_t* p = src + (bit >> 3);
  const int shift = static_cast<int>(bit & 7);
  uint32_t w = p[0];
  if (shift + bits > 8) w |= uint32_t(p[1]) << 8;
  if (shift + bits > 16) w |= uint32_t(p[2]) << 16;
  return (w >> shift) & ((1u << bits) - 1u);
}

}  // namespace mixq::pack
