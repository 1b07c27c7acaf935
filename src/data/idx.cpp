#include "data/idx.h"

#include <ATen/ops/empty.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>

#include "mixq/error.h"

namespace mixq {

at::Tensor load_idx_u8(const std::string& path) {
  MIXQ_CHECK(std::filesystem::exists(path), ErrorKind::kIO, "cannot open '", path,
             "': no such file (install Debian's dataset-fashion-mnist, or set MIXQ_FMNIST_DIR)");
  gzFile f = gzopen(path.c_str(), "rb");  // also reads uncompressed files
  MIXQ_CHECK(f != nullptr, ErrorKind::kIO, "cannot open '", path, "'");
  auto read_exact = [&](void* dst, size_t n) {
    size_t done = 0;
    while (done < n) {
      int got = gzread(f, static_cast<char*>(dst) + done,
                       static_cast<unsigned>(std::min<size_t>(n - done, 1u << 30)));
      if (got <= 0) return false;
      done += static_cast<size_t>(got);
    }
    return true;
  };
  unsigned char magic[4];
  if (!read_exact(magic, 4) || magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] == 0 ||
      magic[3] > 4) {
    gzclose(f);
    throw Error(ErrorKind::kInvalidData, path + ": not an IDX file of unsigned bytes (bad magic)");
  }
  std::vector<int64_t> dims;
  int64_t numel = 1;
  for (int i = 0; i < magic[3]; ++i) {
    unsigned char b[4];
    if (!read_exact(b, 4)) {
      gzclose(f);
      throw Error(ErrorKind::kInvalidData, path + ": truncated IDX header");
    }
    int64_t d = (int64_t(b[0]) << 24) | (b[1] << 16) | (b[2] << 8) | b[3];
    if (d <= 0 || numel > (int64_t(1) << 36) / d) {
      gzclose(f);
      throw Error(ErrorKind::kInvalidData, path + ": bad IDX dimension");
    }
    numel *= d;
    dims.push_back(d);
  }
  at::Tensor t = at::empty(dims, at::TensorOptions().dtype(at::kByte));
  bool ok = read_exact(t.data_ptr(), static_cast<size_t>(numel));
  gzclose(f);
  MIXQ_CHECK(ok, ErrorKind::kInvalidData, path, ": truncated IDX data (expected ", numel,
             " bytes)");
  return t;
}

}  // namespace mixq
