// A serialized onnx.TensorProto file (ONNX test data's input_0.pb): mixq::load_tensor_pb, through a
// scratch file (the reader takes a path; external data resolves beside it, in the scratch dir).
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "onnx/import.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = mixq::fuzz::write_scratch("pb/input_0.pb", data, size);
  mixq::fuzz::expect_clean([&] {
    std::string name;
    mixq::load_tensor_pb(path, &name);
  });
  return 0;
}
