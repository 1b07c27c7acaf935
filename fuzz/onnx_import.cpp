// ONNX import: bytes -> Graph, through protobuf parsing, mixq's structural checks, ONNX shape
// inference and the ONNX checker (mixq::load_onnx_bytes, what `mixq` runs on every model).
// External data resolves in an empty scratch directory (the external_data target covers it).
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "onnx/import.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = mixq::fuzz::scratch_dir();
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  mixq::fuzz::expect_clean([&] { mixq::load_onnx_bytes(bytes, "fuzz.onnx", dir); });
  return 0;
}
