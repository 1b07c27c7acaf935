// Turns a fuzz input into .mxq bytes. A .mxq holds a CRC-32 of its body and a zlib-deflated graph
// section, so byte mutations of a real file almost never get past the checksum or inflate. The
// fuzzer therefore works on an *unpacked* form:
//   inputs starting "MIXQPACK": a .mxq whose graph section is stored raw (header field
//     "graph raw size" says how long; "graph stored size", the file size and the CRC are ignored):
//     the graph is deflated here and size, stored size and CRC are filled in, so mutations reach
//     the graph and data parsers;
//   anything else: passed as is (the header, CRC and inflate checks; a real .mxq is read this way
//     when its magic is written in lower case, "mixqpack", which is turned back here).
// fuzz/make_seeds.py writes the unpacked seeds.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace mixq::fuzz {

inline void put_u32(std::string& s, size_t at, uint32_t v) {
  for (int k = 0; k < 4; ++k) s[at + k] = static_cast<char>((v >> (8 * k)) & 0xff);
}

inline std::string mxq_from_fuzz_input(const uint8_t* data, size_t size) {
  std::string in(reinterpret_cast<const char*>(data), size);
  constexpr size_t kHeader = 40;
  if (size >= 8 && std::memcmp(data, "mixqpack", 8) == 0) {
    std::memcpy(in.data(), "MIXQPACK", 8);
    return in;
  }
  if (size < kHeader || std::memcmp(data, "MIXQPACK", 8) != 0) return in;
  uint32_t graph_raw = 0;
  for (int k = 0; k < 4; ++k) graph_raw |= uint32_t(data[28 + k]) << (8 * k);
  if (graph_raw > size - kHeader) graph_raw = static_cast<uint32_t>(size - kHeader);
  uLongf cap = compressBound(graph_raw);
  std::string z(cap, '\0');
  if (compress2(reinterpret_cast<Bytef*>(z.data()), &cap, data + kHeader, graph_raw, 1) != Z_OK) return in;
  z.resize(cap);
  std::string out = in.substr(0, kHeader) + z + in.substr(kHeader + graph_raw);
  const uint64_t file_size = out.size();
  for (int k = 0; k < 8; ++k) out[16 + k] = static_cast<char>((file_size >> (8 * k)) & 0xff);
  put_u32(out, 28, graph_raw);
  put_u32(out, 32, static_cast<uint32_t>(z.size()));
  put_u32(out, 24, static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(out.data() + kHeader),
                                               static_cast<uInt>(out.size() - kHeader))));
  return out;
}

}  // namespace mixq::fuzz
