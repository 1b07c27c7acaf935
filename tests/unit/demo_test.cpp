// The default end-to-end job (api/demo.h) through the API the CLI prints from: the float row then
// the four quantized rows per fixture, each reaching the row callback in order; a missing index is
// one clear error.
#include <gtest/gtest.h>

#include "api/demo.h"
#include "mixq/error.h"
#include "test_util.h"

namespace mixq::test {
namespace {

TEST(Demo, RowsInOrderThroughTheCallback) {
  DemoOptions o;
  o.models = models_dir();
  o.only = {"fmnist-mlp"};
  o.calib = "fmnist:train:64";
  o.data = "fmnist:test:200";
  o.progress = false;
  std::vector<std::string> seen;
  const nlohmann::json res = run_demo(o, [&](const nlohmann::json& r) { seen.push_back(r["config"]); });
  ASSERT_EQ(res["rows"].size(), 5u);
  EXPECT_EQ(seen, (std::vector<std::string>{"float", "W8A8 uniform", "W4A8 uniform", "MixQuant avg 4b A8",
                                            "IP (kl) avg 3.5b A8"}));
  EXPECT_TRUE(res["float_matches_pytorch"].get<bool>());  // (a subset of the test set: not compared)
  const double f = res["rows"][0]["top1"].get<double>();
  for (size_t i = 1; i < 5; ++i) {
    const auto& r = res["rows"][i];
    ASSERT_FALSE(r.contains("error")) << r.dump();
    EXPECT_NEAR(r["drop"].get<double>(), f - r["top1"].get<double>(), 1e-9);
    EXPECT_LE(r["avg_wbits"].get<double>(), i == 1 ? 8.0 : 4.05);
  }
  o.float_only = true;
  EXPECT_EQ(run_demo(o)["rows"].size(), 1u);
}

TEST(Demo, MissingIndexIsAClearError) {
  TempDir d;
  DemoOptions o;
  o.models = d.path();
  try {
    run_demo(o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kIO);
    EXPECT_NE(std::string(e.what()).find("fixtures.json"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mixq::test
