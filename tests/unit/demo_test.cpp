// The default end-to-end job (api/demo.h) through the API the CLI prints from: the float row then
// the four quantized rows per fixture, each reaching the row callback in order; a missing index is
// one clear error.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

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

// Every `--json` result carries the process's peak resident memory (issue 24: what a job needed
// at most); a usage error exits 2, as the README's table says (not CLI11's own codes).
TEST(CliJson, PeakRssInEveryResultAndUsageErrorsExit2) {
  const std::string model = source_dir() + "/models/fmnist-mlp.onnx";
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"info", model, "--json"}, {"eval", model, "--data", "fmnist:test:50", "--json", "-q"}}) {
    const CliResult r = run_cli(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    ASSERT_TRUE(j.contains("peak_rss_mb")) << args[0];
    EXPECT_GT(j["peak_rss_mb"].get<double>(), 10.0) << args[0];  // libtorch alone is more
    EXPECT_LT(j["peak_rss_mb"].get<double>(), 16384.0) << args[0];
  }
  EXPECT_EQ(run_cli({"quantize", model, "--wbits", "x"}).exit_code, 2);
  EXPECT_EQ(run_cli({"info", model, "--no-such-flag"}).exit_code, 2);
  EXPECT_EQ(run_cli({"info", "--help"}).exit_code, 0);
  // A value rejected by the option's own parser: one message, exit 2, not an abort.
  for (const char* opt : {"--act-scheme", "--act-placement"}) {
    const CliResult r = run_cli({"quantize", model, opt, "bogus"});
    EXPECT_EQ(r.exit_code, 2) << opt << ": " << r.err;
    EXPECT_NE(r.err.find("error: "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("bogus"), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace mixq::test
