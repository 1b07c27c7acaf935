// QuantPlan JSON (`mixq quantize --plan FILE`): mixq::load_plan against a four-layer model
// (plan_template.h), through a scratch file (the reader takes a path).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/atomic_file.h"
#include "fuzz_util.h"
#include "plan_template.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* seed = std::getenv("MIXQ_FUZZ_WRITE_SEED")) {
    mixq::save_plan(mixq::fuzz::plan_model().plan, seed);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& pm = mixq::fuzz::plan_model();
  const std::string path = mixq::fuzz::write_scratch("plan.json", data, size);
  mixq::fuzz::expect_clean([&] { mixq::load_plan(path, pm.plan); });
  return 0;
}
