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

// With MIXQ_UPDATE_GOLDEN set: writes `got` to `path` and returns false (the test then skips).
// Else reads the stored values into `want` (a missing file fails the test) and returns true.
bool golden_or_update(const std::string& path, const nlohmann::json& got, nlohmann::json& want) {
  if (std::getenv("MIXQ_UPDATE_GOLDEN")) {
    write_file(path, got.dump(2) + "\n");
    return false;
  }
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path << " is missing: run with MIXQ_UPDATE_GOLDEN=1";
  want = f.good() ? nlohmann::json::parse(f) : nlohmann::json::object();
  return true;
}

TEST(Golden, ResnetMixQuantAndW4A8) {
  const std::string path = source_dir() + "/tests/golden/resnet.json";
  nlohmann::json got = measure();
  nlohmann::json want;
  if (!golden_or_update(path, got, want)) GTEST_SKIP() << "wrote " << path;
  ASSERT_FALSE(want.empty());
  EXPECT_EQ(got["mixquant_avg4"]["bits"], want["mixquant_avg4"]["bits"]);
  EXPECT_EQ(got["mixquant_avg4"]["size_bytes"], want["mixquant_avg4"]["size_bytes"]);
  EXPECT_EQ(got["uniform_w4a8"]["size_bytes"], want["uniform_w4a8"]["size_bytes"]);
  // One image in 1,000 of slack: thread counts can flip a near-tie between runs.
  EXPECT_NEAR(got["uniform_w4a8"]["top1"].get<double>(), want["uniform_w4a8"]["top1"].get<double>(), 0.1 + 1e-9);
  EXPECT_NEAR(got["mixquant_avg4"]["top1"].get<double>(), want["mixquant_avg4"]["top1"].get<double>(), 0.1 + 1e-9);
}

// BRECQ with a small iteration count and a fixed seed (W2A4, weights and activation steps
// learned): accuracy and per-layer sums of the integer codes, stored in tests/golden/resnet_brecq.json.
TEST(Golden, ResnetBrecqW2A4) {
  const std::string path = source_dir() + "/tests/golden/resnet_brecq.json";
  QuantizeJob job = golden_job();
  job.calib = "fmnist:train:128";
  job.method = "brecq";
  job.search_opts.wbits = job.defaults.wbits = 2;
  job.defaults.abits = 4;
  job.recon.scale_iters(80);
  job.recon.precision = "fp32";  // the golden values are float32's (auto would pick bf16 on AMX CPUs)
  QuantizeResult r = run_quantize(job);
  nlohmann::json got;
  got["top1"] = r.quant_eval->top1;
  std::vector<double> sums;
  for (const auto& w : r.qmodel.weights) sums.push_back(w.codes.sum().item<double>());
  got["code_sums"] = sums;
  std::vector<double> losses;
  for (const auto& u : r.method_report["units"]) losses.push_back(u["loss_learned"].get<double>());
  got["unit_losses"] = losses;
  nlohmann::json want;
  if (!golden_or_update(path, got, want)) GTEST_SKIP() << "wrote " << path;
  ASSERT_FALSE(want.empty());
  // Floating-point summation order differs between machines (AVX2 / AVX-512, thread counts), so
  // an optimiser's path may drift a little: allow 3 images in 1,000 and 1% per code sum.
  EXPECT_NEAR(got["top1"].get<double>(), want["top1"].get<double>(), 0.3 + 1e-9);
  ASSERT_EQ(got["code_sums"].size(), want["code_sums"].size());
  for (size_t i = 0; i < sums.size(); ++i) {
    const double w = want["code_sums"][i].get<double>();
    EXPECT_NEAR(sums[i], w, 0.01 * std::abs(w) + 1) << "layer " << i;
  }
  ASSERT_EQ(got["unit_losses"].size(), want["unit_losses"].size());
  for (size_t i = 0; i < losses.size(); ++i) {
    const double w = want["unit_losses"][i].get<double>();
    EXPECT_NEAR(losses[i], w, 0.05 * w) << "unit " << i;
  }
}

}  // namespace
}  // namespace mixq::test
