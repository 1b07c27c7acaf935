// Golden end-to-end check on the ResNet fixture (fixed seed, fixed data): the MixQuant plan at a
// 4-bit average and the accuracy of uniform W4A8 / MixQuant plans are compared with stored values
// (tests/golden/resnet.json), so a change that moves results is seen. To accept a deliberate
// change, run the test with MIXQ_UPDATE_GOLDEN=1 and commit the new file with the reason.
#include <nlohmann/json.hpp>

#include "api/quantize_job.h"
#include "test_util.h"

namespace mixq::test {
namespace {

QuantizeJob golden_job() {
  QuantizeJob job;
  job.model_path = fixture("fmnist-resnet");
  job.calib = "fmnist:train:256";
  job.eval = "fmnist:test:1000";
  job.eval_float = false;
  job.method = "mse";
  job.qopts.progress = false;
  job.qopts.seed = 7;
  return job;
}

nlohmann::json measure() {
  nlohmann::json out;
  QuantizeJob uni = golden_job();
  uni.search = "uniform";
  uni.search_opts.wbits = uni.defaults.wbits = 4;
  QuantizeResult ru = run_quantize(uni);
  out["uniform_w4a8"] = {{"top1", ru.quant_eval->top1}, {"size_bytes", ru.plan.cost.size_bytes}};
  QuantizeJob mq = golden_job();
  mq.search = "mixquant";
  mq.search_opts.budget_avg_wbits = 4;
  QuantizeResult rm = run_quantize(mq);
  std::vector<int> bits;
  for (const auto& L : rm.plan.layers) bits.push_back(L.weight_scheme.bits);
  out["mixquant_avg4"] = {{"top1", rm.quant_eval->top1}, {"bits", bits}, {"size_bytes", rm.plan.cost.size_bytes},
                          {"avg_wbits", rm.plan.cost.avg_wbits}};
  return out;
}

TEST(Golden, ResnetMixQuantAndW4A8) {
  const std::string path = source_dir() + "/tests/golden/resnet.json";
  nlohmann::json got = measure();
  if (std::getenv("MIXQ_UPDATE_GOLDEN")) {
    write_file(path, got.dump(2) + "\n");
    GTEST_SKIP() << "wrote " << path;
  }
  std::ifstream f(path);
  ASSERT_TRUE(f.good()) << path << " is missing: run with MIXQ_UPDATE_GOLDEN=1";
  nlohmann::json want = nlohmann::json::parse(f);
  EXPECT_EQ(got["mixquant_avg4"]["bits"], want["mixquant_avg4"]["bits"]);
  EXPECT_EQ(got["mixquant_avg4"]["size_bytes"], want["mixquant_avg4"]["size_bytes"]);
  EXPECT_EQ(got["uniform_w4a8"]["size_bytes"], want["uniform_w4a8"]["size_bytes"]);
  // One image in 1,000 of slack: thread counts can flip a near-tie between runs.
  EXPECT_NEAR(got["uniform_w4a8"]["top1"].get<double>(), want["uniform_w4a8"]["top1"].get<double>(), 0.1 + 1e-9);
  EXPECT_NEAR(got["mixquant_avg4"]["top1"].get<double>(), want["mixquant_avg4"]["top1"].get<double>(), 0.1 + 1e-9);
}

}  // namespace
}  // namespace mixq::test
