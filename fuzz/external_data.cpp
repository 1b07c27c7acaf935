// External-data resolution: a TensorProto whose data lives in files beside the model
// (mixq::tensor_from_proto with data_location EXTERNAL: location / offset / length keys).
// Input layout (a tiny in-memory file set, then the tensor):
//   u8 file count (mod 4); per file: u8 name index (mod 4), u16 LE length, that many bytes;
//   the rest: a serialized onnx.TensorProto.
// The files are written to a scratch directory, which is the tensor's base directory.
#include <cstdint>
#include <filesystem>
#include <string>

#include "fuzz_util.h"
#include "onnx/tensor_proto.h"

namespace {
const char* const kNames[4] = {"weights.bin", "sub/w.bin", "x.data", "w.bin"};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace fs = std::filesystem;
  static const std::string dir = mixq::fuzz::scratch_dir() + "/model";
  fs::remove_all(dir);
  fs::create_directories(dir);
  size_t pos = 0;
  if (size == 0) return 0;
  const int files = data[pos++] % 4;
  for (int k = 0; k < files; ++k) {
    if (pos + 3 > size) return 0;
    const char* name = kNames[data[pos] % 4];
    size_t len = data[pos + 1] | (size_t(data[pos + 2]) << 8);
    pos += 3;
    if (len > size - pos) len = size - pos;
    mixq::fuzz::write_scratch(std::string("model/") + name, data + pos, len);
    pos += len;
  }
  onnx::TensorProto tp;
  if (!tp.ParseFromArray(data + pos, static_cast<int>(size - pos))) return 0;
  mixq::fuzz::expect_clean([&] { mixq::tensor_from_proto(tp, dir, "initializer 'w' in fuzz.onnx"); });
  return 0;
}
