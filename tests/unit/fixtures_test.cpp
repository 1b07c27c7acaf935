// Golden check of the bundled fixtures: mixq's executor reproduces PyTorch's test accuracy
// (models/fixtures.json, made by models/make_fixtures.py) to 0.01 points and the reference logits
// of the first 64 test images to 1e-4.
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "exec/evaluate.h"
#include "onnx/import.h"
#include "test_util.h"

namespace mixq::test {
namespace {

nlohmann::json fixtures() {
  std::ifstream f(models_dir() + "/fixtures.json");
  EXPECT_TRUE(f.good()) << "models/fixtures.json is missing";
  return nlohmann::json::parse(f);
}

class Fixture : public ::testing::TestWithParam<std::string> {};

TEST_P(Fixture, ReproducesPyTorchAccuracyAndLogits) {
  const auto fx = fixtures().at("models").at(GetParam());
  Graph g = load_onnx(models_dir() + "/" + fx.at("file").get<std::string>());
  bool found = false;
  Preprocess pp = preprocess_from_metadata(g, &found);
  EXPECT_TRUE(found) << "fixture has no mixq.input_* metadata";
  auto test = open_dataset("fmnist:test", g.inputs, pp);
  Executor ex(std::move(g));

  // Reference logits on the first 64 test images.
  auto ref = fx.at("reference_logits").get<std::vector<std::vector<float>>>();
  ASSERT_EQ(ref.size(), 64u);
  at::Tensor want = at::empty({64, static_cast<int64_t>(ref[0].size())});
  for (int64_t i = 0; i < 64; ++i)
    for (int64_t j = 0; j < want.size(1); ++j) want[i][j] = ref[i][j];
  at::Tensor got = ex.run(test->get(0, 64).inputs).at(0);
  double max_err = (got - want).abs().max().item<double>();
  EXPECT_LE(max_err, 1e-4) << GetParam() << ": max |logit - reference| = " << max_err;

  EvalOptions eo;
  eo.progress = false;
  EvalResult r = evaluate(ex, *test, eo);
  EXPECT_EQ(r.samples, 10000);
  EXPECT_NEAR(r.top1, fx.at("top1").get<double>(), 0.01 + 1e-9) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Bundled, Fixture,
                         ::testing::Values("fmnist-resnet", "fmnist-mobilenetv2", "fmnist-vit",
                                           "fmnist-mlp", "fmnist-embedbag"),
                         [](const auto& info) {
                           std::string n = info.param.substr(7);
                           return n;
                         });

TEST(Fixtures, ModelsAreSmallAndCarryPreprocessing) {
  // Not `fixtures().at("models").items()` in the loop header: the temporary would die before
  // the loop runs (heap-use-after-free, found by scripts/test.sh --sanitize).
  const nlohmann::json all = fixtures();
  for (const auto& [name, m] : all.at("models").items()) {
    std::string path = models_dir() + "/" + m.at("file").get<std::string>();
    EXPECT_LT(std::filesystem::file_size(path), 5u << 20) << path;
    EXPECT_TRUE(m.contains("preprocessing")) << name;
  }
}

}  // namespace
}  // namespace mixq::test
