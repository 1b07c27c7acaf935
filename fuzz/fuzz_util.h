// Shared helpers of the libFuzzer targets (fuzz/*.cpp; scripts/fuzz.sh runs them).
//
// mixq's rule for untrusted input: a bad file is a mixq::Error naming it (the CLI exits non-zero),
// never a crash. So a target calls the reader and accepts only that: a mixq::Error of any kind but
// kInternal. kInternal (a failed MIXQ_ASSERT), any other exception (std::out_of_range,
// nlohmann::json errors, std::bad_alloc, c10::Error) and, of course, sanitizer reports are
// findings: the target aborts so libFuzzer saves the input.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <typeinfo>

#include "mixq/error.h"

namespace mixq::fuzz {

// A private directory for readers that take a path (one per process; removed at exit). /dev/shm
// keeps the writes in memory.
inline const std::string& scratch_dir() {
  // Never freed: the exit handler that removes the directory runs after static destructors.
  static const std::string* dir = [] {
    namespace fs = std::filesystem;
    fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    fs::path d = base / ("mixq-fuzz." + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(*dir, ec);
    });
    return new std::string(d.string());
  }();
  return *dir;
}

// Writes `size` bytes to scratch_dir()/name (parents created) and returns the path.
inline std::string write_scratch(const std::string& name, const void* data, size_t size) {
  namespace fs = std::filesystem;
  fs::path p = fs::path(scratch_dir()) / name;
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!f) {
    std::fprintf(stderr, "fuzz: cannot write scratch file %s\n", p.c_str());
    std::abort();
  }
  return p.string();
}

[[noreturn]] inline void finding(const char* what, const char* type, const char* msg) {
  std::fprintf(stderr, "\nFUZZ FINDING: %s (%s): %s\n", what, type, msg);
  std::fflush(stderr);
  std::abort();
}

// Runs `f`; a clean mixq::Error is the expected outcome for bad input, anything else aborts.
template <typename F>
void expect_clean(F&& f) {
  try {
    f();
  } catch (const mixq::Error& e) {
    if (e.kind() == mixq::ErrorKind::kInternal) finding("internal error (MIXQ_ASSERT) on input", "mixq::Error", e.what());
  } catch (const std::exception& e) {
    finding("an exception that is not a mixq::Error escaped the reader", typeid(e).name(), e.what());
  } catch (...) {
    finding("a non-std exception escaped the reader", "?", "");
  }
}

}  // namespace mixq::fuzz
