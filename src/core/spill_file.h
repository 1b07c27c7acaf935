// An unlinked temporary file for data that does not fit a memory budget (reconstruction caches,
// the sensitivity probe's cut values): created in `dir` ("" = $TMPDIR or /tmp) and unlinked at
// once, so nothing is left behind on exit, a crash or Ctrl-C; the page cache, not the heap, holds
// what is written. Appends return the offset; reads are positional. No libtorch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace mixq {

class SpillFile {
 public:
  // `what` names the data in errors, `hint` says what to change (e.g. "pass --cache-dir").
  SpillFile(const std::string& dir, const std::string& what, const std::string& hint);
  ~SpillFile();
  SpillFile(const SpillFile&) = delete;
  SpillFile& operator=(const SpillFile&) = delete;

  int fd() const { return fd_; }
  int64_t size() const { return size_; }
  // Writes n bytes at the end; returns their offset. kIO with the cause on failure (disk full).
  int64_t append(const void* p, size_t n);
  // Reads n bytes at `offset` (all of them, or kIO).
  void read(int64_t offset, void* dst, size_t n) const;

 private:
  int fd_ = -1;
  int64_t size_ = 0;
  std::string what_, hint_;
};

}  // namespace mixq
