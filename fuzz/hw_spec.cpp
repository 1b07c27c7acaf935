// Hardware-spec JSON (`--hw FILE`, HAGO): mixq::load_hw_spec through a scratch file, then what the
// allocators do with a spec: fit the four-layer template plan to it (fit_plan_to_spec), list its
// shared groups and check the plan against it.
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "plan_template.h"
#include "search/hw_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& pm = mixq::fuzz::plan_model();
  const std::string path = mixq::fuzz::write_scratch("hw.json", data, size);
  mixq::fuzz::expect_clean([&] {
    mixq::HwSpec hw = mixq::load_hw_spec(path);
    mixq::QuantPlan plan = pm.plan;
    mixq::fit_plan_to_spec(plan, hw);
    for (const auto& L : plan.layers) mixq::allowed_wbits(hw, L);
    mixq::shared_groups(hw, pm.g, plan);
    mixq::check_plan_against_spec(plan, hw, pm.g);
  });
  return 0;
}
