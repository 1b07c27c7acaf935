// Crash-safe file output: a reader of `path` sees either the old file or the complete new one,
// never a truncated mix (an interrupted `mixq quantize -o model.q.onnx` leaves the previous
// model intact).
#pragma once

#include <string>

namespace mixq {

// Writes `bytes` to `path` atomically: a temporary file in the same directory (".<name>.tmp.*";
// mode 0666 & ~umask, or the mode of the file it replaces), write, fsync, rename over `path`,
// fsync the directory. On any failure the temporary file is removed and mixq::Error(kIO) is
// thrown naming `path` and the system's reason (strerror). A missing directory is not created.
// If `path` is a symbolic link, the link itself is replaced by a regular file.
// Refusing to overwrite an input file is the caller's decision (see same_file).
void write_file_atomic(const std::string& path, const std::string& bytes);

// From now on write_file_atomic throws kInternal naming `who`: an MPI worker rank never writes
// (rank 0 owns every output, dist/dist.h); a write there would be a bug, not a race to lose.
void forbid_file_writes(const std::string& who);

// Removes the temporary files ".<name>.tmp.<pid>.<n>" of `path` that a killed process (SIGKILL,
// power loss) left behind: those whose pid is no longer running. write_file_atomic calls it first;
// a job that removes a file it owns (a finished checkpoint) calls it too. Never throws.
void remove_stale_temporaries(const std::string& path);

// True when `a` and `b` name the same file: std::filesystem::equivalent when both exist (hard
// links, symlinks, "./x" vs "x"), otherwise a comparison of their weakly canonical paths.
// Never throws.
bool same_file(const std::string& a, const std::string& b);

}  // namespace mixq
