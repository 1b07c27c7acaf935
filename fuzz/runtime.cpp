// The runtime on a fuzzed-but-valid .mxq: inputs that read_mxq accepts are loaded as an
// rt::Model (graph checks, op preparation, weight unpacking, fusion) and run once on a small
// input (symbolic dims 1; inputs above 4096 elements are skipped: the fuzzer is after crashes, not
// big shapes). Load or run errors must be clean mixq::Errors.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "mxq_input.h"
#include "runtime/runtime.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes = mixq::fuzz::mxq_from_fuzz_input(data, size);
  mixq::pack::PackedModel pm;
  try {
    pm = mixq::pack::read_mxq(bytes, "fuzz.mxq");
  } catch (const mixq::Error&) {
    return 0;  // not a valid .mxq: the mxq target covers the reader's errors
  }
  std::vector<mixq::rt::Tensor> inputs;
  for (const auto& d : pm.inputs) {
    std::vector<int64_t> shape;
    int64_t n = 1;
    for (int64_t v : d.dims) {
      const int64_t dim = v < 0 ? 1 : v;
      if (dim > 4096) return 0;
      n *= dim;
      if (n > 4096) return 0;
      shape.push_back(dim);
    }
    if (d.dtype == mixq::pack::ElemType::kInt64) {
      auto t = mixq::rt::Tensor::ints(shape);
      for (size_t k = 0; k < t.i.size(); ++k) t.i[k] = static_cast<int64_t>(k % 3);
      inputs.push_back(std::move(t));
    } else {
      auto t = mixq::rt::Tensor::floats(shape);
      for (size_t k = 0; k < t.f.size(); ++k) t.f[k] = std::sin(0.37f * static_cast<float>(k));
      inputs.push_back(std::move(t));
    }
  }
  mixq::fuzz::expect_clean([&] {
    mixq::rt::ModelOptions opts;
    opts.threads = 1;
    mixq::rt::Model model(std::move(pm), opts);
    model.run(inputs);
  });
  return 0;
}
