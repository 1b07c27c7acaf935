// Little-endian byte writer and a bounds-checked reader for the .mxq format. No libtorch.
// The reader never trusts a length: every count is checked against the bytes left before anything
// is allocated, and a failure throws mixq::Error(kInvalidModel) naming the file and the field.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "mixq/error.h"

namespace mixq::pack {

class ByteWriter {
 public:
  void u8(uint8_t v) { buf_.push_back(static_cast<char>(v)); }
  void u16(uint16_t v) { for (int i = 0; i < 2; ++i) u8(static_cast<uint8_t>(v >> (8 * i))); }
  void u32(uint32_t v) { for (int i = 0; i < 4; ++i) u8(static_cast<uint8_t>(v >> (8 * i))); }
  void u64(uint64_t v) { for (int i = 0; i < 8; ++i) u8(static_cast<uint8_t>(v >> (8 * i))); }
  void i64(int64_t v) { u64(static_cast<uint64_t>(v)); }
  void f32(float v) { uint32_t b; std::memcpy(&b, &v, 4); u32(b); }
  void str(const std::string& s) { u32(static_cast<uint32_t>(s.size())); buf_.append(s); }
  void bytes(const void* p, size_t n) { buf_.append(static_cast<const char*>(p), n); }
  void i64s(const std::vector<int64_t>& v) { u32(static_cast<uint32_t>(v.size())); for (int64_t x : v) i64(x); }
  std::string& buf() { return buf_; }

 private:
  std::string buf_;
};

class ByteReader {
 public:
  // `where`: "model.mxq" (the file), for messages.
  ByteReader(const uint8_t* data, size_t size, std::string where) : p_(data), n_(size), where_(std::move(where)) {}

  size_t left() const { return n_ - pos_; }
  size_t pos() const { return pos_; }
  const std::string& where() const { return where_; }

  // Throws unless `n` more bytes exist; `what` names the field being read.
  void need(uint64_t n, const char* what) const {
    MIXQ_CHECK(n <= left(), ErrorKind::kInvalidModel, where_, ": truncated or corrupt .mxq file: ", what, " needs ",
               n, " bytes at offset ", pos_, " but only ", left(), " remain (re-create it with `mixq pack`)");
  }
  uint8_t u8(const char* what) { need(1, what); return p_[pos_++]; }
  uint16_t u16(const char* what) { need(2, what); uint16_t v = uint16_t(p_[pos_] | (p_[pos_ + 1] << 8)); pos_ += 2; return v; }
  uint32_t u32(const char* what) {
    need(4, what);
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t(p_[pos_ + i]) << (8 * i);
    pos_ += 4;
    return v;
  }
  uint64_t u64(const char* what) {
    need(8, what);
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t(p_[pos_ + i]) << (8 * i);
    pos_ += 8;
    return v;
  }
  int64_t i64(const char* what) { return static_cast<int64_t>(u64(what)); }
  float f32(const char* what) { uint32_t b = u32(what); float v; std::memcpy(&v, &b, 4); return v; }
  std::string str(const char* what) {
    uint32_t n = u32(what);
    need(n, what);
    std::string s(reinterpret_cast<const char*>(p_ + pos_), n);
    pos_ += n;
    return s;
  }
  // A count of items each at least `min_item_bytes` long: rejected before allocation when the
  // remaining bytes cannot hold that many.
  uint32_t count(const char* what, size_t min_item_bytes) {
    uint32_t n = u32(what);
    need(uint64_t(n) * min_item_bytes, what);
    return n;
  }
  std::vector<int64_t> i64s(const char* what) {
    uint32_t n = count(what, 8);
    std::vector<int64_t> v(n);
    for (auto& x : v) x = i64(what);
    return v;
  }
  const uint8_t* take(uint64_t n, const char* what) {
    need(n, what);
    const uint8_t* q = p_ + pos_;
    pos_ += n;
    return q;
  }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
  std::string where_;
};

}  // namespace mixq::pack
