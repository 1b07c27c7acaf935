// The .mxq reader: header, graph section (metadata, values, nodes, attributes, tensor / weight /
// activation declarations) and the data section (every tensor and packed-weight record):
// mixq::pack::read_mxq on bytes (mxq_input.h: the fuzzer mutates the graph section uncompressed).
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "mxq_input.h"
#include "pack/mxq_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes = mixq::fuzz::mxq_from_fuzz_input(data, size);
  mixq::fuzz::expect_clean([&] {
    mixq::pack::PackedModel m = mixq::pack::read_mxq(bytes, "fuzz.mxq");
    // The writer checks the same invariants as the reader: what was read must write back.
    mixq::pack::write_mxq(m);
  });
  return 0;
}
