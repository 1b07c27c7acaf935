// Sensitivity-table JSON (`--sens-cache`, `mixq plan --from-table`): mixq::load_table through a
// scratch file (the reader takes a path).
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "search/sensitivity.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = mixq::fuzz::write_scratch("table.json", data, size);
  mixq::fuzz::expect_clean([&] { mixq::load_table(path); });
  return 0;
}
