#include "core/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "mixq/error.h"

namespace mixq {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& step, int err,
                       const std::string& hint = "") {
  throw Error(ErrorKind::kIO,
              detail::concat("cannot write '", path, "': ", step, ": ", std::strerror(err), hint));
}

// Removes the temporary file when the write does not reach the rename.
struct TempGuard {
  std::string path;
  int fd = -1;
  ~TempGuard() {
    if (fd >= 0) ::close(fd);
    if (!path.empty()) ::unlink(path.c_str());
  }
};

}  // namespace

void remove_stale_temporaries(const std::string& path) {
  std::error_code ec;
  const fs::path target(path);
  const std::string prefix = "." + target.filename().string() + ".tmp.";
  const fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    // ".<name>.tmp.<pid>.<n>": only a dead writer's file is stale (a live one is mid-write).
    const std::string rest = name.substr(prefix.size());
    const size_t dot = rest.find('.');
    if (dot == 0 || dot == std::string::npos || rest.find_first_not_of("0123456789.") != std::string::npos) continue;
    const long pid = std::strtol(rest.substr(0, dot).c_str(), nullptr, 10);
    if (pid <= 0 || pid == ::getpid() || ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    fs::remove(it->path(), ec);
    ec.clear();
  }
}

namespace {
std::string g_no_writes;  // who may not write ("" : this process may)
}

void forbid_file_writes(const std::string& who) { g_no_writes = who; }

void write_file_atomic(const std::string& path, const std::string& bytes) {
  MIXQ_CHECK(g_no_writes.empty(), ErrorKind::kInternal, g_no_writes, " tried to write '", path, "'");
  MIXQ_CHECK(!path.empty(), ErrorKind::kIO, "cannot write a file: the output path is empty");
  const fs::path target(path);
  const std::string base = target.filename().string();
  std::error_code ec;
  MIXQ_CHECK(!base.empty() && base != "." && base != ".." && !fs::is_directory(target, ec),
             ErrorKind::kIO, "cannot write '", path, "': it is a directory (give a file name)");
  const fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  remove_stale_temporaries(path);

  // Keep the permissions of a file we replace; new files get 0666 & ~umask from open().
  struct stat old_st {};
  const bool replacing = ::stat(path.c_str(), &old_st) == 0 && S_ISREG(old_st.st_mode);

  static std::atomic<unsigned> counter{0};
  TempGuard tmp;
  for (int attempt = 0;; ++attempt) {
    std::string name = "." + base + ".tmp." + std::to_string(::getpid()) + "." +
                       std::to_string(counter.fetch_add(1));
    std::string candidate = (dir / name).string();
    tmp.fd = ::open(candidate.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (tmp.fd >= 0) {
      tmp.path = candidate;
      break;
    }
    const int err = errno;
    if (err == EEXIST && attempt < 100) continue;
    std::string hint;
    if (err == ENOENT || err == ENOTDIR)
      hint = " (the directory '" + dir.string() + "' does not exist: create it first)";
    fail(path, "cannot create a temporary file in '" + dir.string() + "'", err, hint);
  }
  if (replacing)
    ::fchmod(tmp.fd, old_st.st_mode & 07777);  // best effort: a failure keeps 0666&~umask

  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    ssize_t n = ::write(tmp.fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(path, "write failed", errno);
    }
    if (n == 0) fail(path, "write failed", EIO);
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::fsync(tmp.fd) != 0) fail(path, "fsync failed", errno);
  const int fd = tmp.fd;
  tmp.fd = -1;
  if (::close(fd) != 0) fail(path, "close failed", errno);
  if (::rename(tmp.path.c_str(), path.c_str()) != 0) fail(path, "rename failed", errno);
  tmp.path.clear();  // renamed: nothing left to remove

  // Make the rename itself durable. Some file systems refuse fsync on directories; the data is
  // already in place, so that is not an error.
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  if (fs::exists(a, ec) && fs::exists(b, ec)) {
    bool eq = fs::equivalent(a, b, ec);
    return !ec && eq;
  }
  fs::path ca = fs::weakly_canonical(a, ec);
  if (ec) return a == b;
  fs::path cb = fs::weakly_canonical(b, ec);
  if (ec) return a == b;
  return ca == cb;
}

}  // namespace mixq
