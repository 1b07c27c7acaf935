// Helpers shared by the unit tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>
#include <sys/wait.h>

#include "kernels/isa.h"
#include "mixq/error.h"

namespace mixq::test {

// The kernel paths this CPU can run (ref always), for tests that compare every path.
inline std::vector<kernels::Isa> isas() {
  std::vector<kernels::Isa> v;
  for (auto isa : {kernels::Isa::kRef, kernels::Isa::kAvx2, kernels::Isa::kAvx512})
    if (kernels::isa_supported(isa)) v.push_back(isa);
  return v;
}

inline std::string source_dir() { return MIXQ_SOURCE_DIR; }
inline std::string models_dir() { return source_dir() + "/models"; }
inline std::string fixture(const std::string& name) { return models_dir() + "/" + name + ".onnx"; }

// A fresh temporary directory per test, removed at the end.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "mixq-test-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
}
inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct CliResult {
  int exit_code = -1;   // -1: killed by a signal (a crash)
  std::string out, err;
};

// Runs the mixq CLI (path from $MIXQ_CLI, set by CTest) with shell-quoted args.
inline CliResult run_cli(const std::vector<std::string>& args) {
  const char* cli = std::getenv("MIXQ_CLI");
  std::string exe = cli ? cli : MIXQ_BINARY_DIR "/mixq";
  TempDir tmp;
  std::string cmd = "'" + exe + "'";
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " >'" + tmp.file("out") + "' 2>'" + tmp.file("err") + "' </dev/null";
  int status = std::system(cmd.c_str());
  CliResult r;
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  r.out = read_file(tmp.file("out"));
  r.err = read_file(tmp.file("err"));
  return r;
}

// Writes a C-ordered little-endian .npy file.
inline void write_npy(const std::string& path, const std::string& descr, const std::vector<int64_t>& shape,
                      const void* data, size_t nbytes) {
  std::string dims;
  for (size_t i = 0; i < shape.size(); ++i) dims += std::to_string(shape[i]) + (shape.size() == 1 || i + 1 < shape.size() ? "," : "");
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::string bytes = std::string("\x93NUMPY\x01\x00", 8);
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>(header.size() >> 8);
  bytes += header;
  bytes.append(static_cast<const char*>(data), nbytes);
  write_file(path, bytes);
}

}  // namespace mixq::test
