#include "core/spill_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "mixq/error.h"

namespace mixq {

SpillFile::SpillFile(const std::string& dir0, const std::string& what, const std::string& hint)
    : what_(what), hint_(hint) {
  std::string dir = dir0;
  if (dir.empty()) {
    const char* t = std::getenv("TMPDIR");
    dir = t && *t ? t : "/tmp";
  }
  std::string tmpl = dir + "/mixq-cache-XXXXXX";
  std::vector<char> path(tmpl.begin(), tmpl.end());
  path.push_back('\0');
  fd_ = mkstemp(path.data());
  MIXQ_CHECK(fd_ >= 0, ErrorKind::kIO, "cannot create a spill file for ", what_, " in ", dir, ": ",
             std::strerror(errno), "; ", hint_);
  unlink(path.data());
}

SpillFile::~SpillFile() {
  if (fd_ >= 0) close(fd_);
}

int64_t SpillFile::append(const void* p0, size_t n) {
  const int64_t at = size_;
  const char* p = static_cast<const char*>(p0);
  while (n) {
    const ssize_t w = pwrite(fd_, p, n, size_);
    MIXQ_CHECK(w > 0, ErrorKind::kIO, "writing the spill file for ", what_, " failed: ", std::strerror(errno), "; ",
               hint_);
    p += w;
    n -= static_cast<size_t>(w);
    size_ += w;
  }
  return at;
}

void SpillFile::read(int64_t offset, void* dst, size_t n) const {
  char* p = static_cast<char*>(dst);
  while (n) {
    const ssize_t r = pread(fd_, p, n, offset);
    MIXQ_CHECK(r > 0, ErrorKind::kIO, "reading the spill file for ", what_, " failed: ",
               r == 0 ? "unexpected end" : std::strerror(errno));
    p += r;
    n -= static_cast<size_t>(r);
    offset += r;
  }
}

}  // namespace mixq
