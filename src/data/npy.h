// NumPy .npy / .npz reading. Headers are parsed defensively: every length is checked against the
// bytes present, and unsupported dtypes or Fortran order are rejected with the file named.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>

namespace mixq {

// Parses the bytes of one .npy file. `what` names it in errors.
at::Tensor parse_npy(const std::string& bytes, const std::string& what);
at::Tensor load_npy(const std::string& path);
// Writes a C-ordered little-endian .npy (float32/64, float16, int8-64, uint8, bool), atomically.
void save_npy(const std::string& path, const at::Tensor& t);
// Writes an uncompressed .npz (one .npy entry per array, named "<name>.npy"), atomically.
void save_npz(const std::string& path, const std::map<std::string, at::Tensor>& arrays);
// Every array in an .npz archive (stored or deflated), keyed by name without ".npy".
std::map<std::string, at::Tensor> load_npz(const std::string& path);

}  // namespace mixq
