// What the two ONNX node-suite harnesses share (onnx_node_tests.cpp: the executor;
// rt_node_tests.cpp: the packed runtime): the command line, the case list, the stored tensors of a
// test data set and the known-failures file.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "onnx/import.h"

namespace mixq::node_suite {

namespace fs = std::filesystem;

struct Args {
  std::string data = "/usr/share/libonnx-testdata/data/node", filter, summary_path, known_path;
  bool verbose = false;
  std::map<std::string, std::string> known;  // case -> why (from known_path)
  std::vector<fs::path> cases;               // the case directories matching filter, sorted
};

// Reads the known-failures file: one "name: why" per line, '#' comments.
inline std::map<std::string, std::string> read_known(const std::string& path) {
  std::map<std::string, std::string> known;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon), why = line.substr(colon + 1);
    while (!why.empty() && why[0] == ' ') why.erase(0, 1);
    known[name] = why;
  }
  return known;
}

// [--data DIR] [--filter SUBSTR] [--summary FILE] [--known FILE] [-v]; also lists the cases and
// sets libtorch to one thread. Returns 0, or the exit code to stop with (2: bad usage, no data).
inline int parse_args(int argc, char** argv, Args& a) {
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (s == "--data") a.data = next();
    else if (s == "--filter") a.filter = next();
    else if (s == "--summary") a.summary_path = next();
    else if (s == "--known") a.known_path = next();
    else if (s == "-v") a.verbose = true;
    else { std::cerr << "unknown argument " << s << "\n"; return 2; }
  }
  if (!fs::is_directory(a.data)) {
    std::cerr << "ONNX node test data not found at " << a.data << " (install Debian's libonnx-testdata)\n";
    return 2;
  }
  at::set_num_threads(1);
  if (!a.known_path.empty()) a.known = read_known(a.known_path);
  for (const auto& e : fs::directory_iterator(a.data))
    if (e.is_directory() && e.path().filename().string().find(a.filter) != std::string::npos)
      a.cases.push_back(e.path());
  std::sort(a.cases.begin(), a.cases.end());
  return 0;
}

// prefix0.pb, prefix1.pb, ... in `dir` (a test_data_set_N folder), until one is missing.
inline std::vector<at::Tensor> load_series(const fs::path& dir, const std::string& prefix) {
  std::vector<at::Tensor> out;
  for (int i = 0;; ++i) {
    fs::path p = dir / (prefix + std::to_string(i) + ".pb");
    if (!fs::exists(p)) break;
    out.push_back(load_tensor_pb(p.string()));
  }
  return out;
}

}  // namespace mixq::node_suite
