// --calib-sample random: a seeded draw without replacement from the whole split, the same for the
// same seed, another for another seed; the default stays the first samples.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <set>

#include "data/calib_sampling.h"
#include "mixq/error.h"
#include "test_util.h"

namespace mixq::test {
namespace {

std::vector<ValueInfo> image_input() {
  ValueInfo v;
  v.name = "x";
  v.dtype = DType::kFloat;
  v.has_shape = true;
  v.dims = {-1, 1, 28, 28};
  return {v};
}

std::unique_ptr<Dataset> numbered(int64_t n) {
  // Sample i holds the value i, so a draw can be read back.
  at::Tensor x = at::arange(n, at::kFloat).reshape({n, 1});
  return memory_dataset({x}, at::arange(n, at::kLong), "numbered");
}

std::vector<int64_t> values(const Dataset& d) {
  Batch b = d.get(0, d.size());
  std::vector<int64_t> v;
  for (int64_t i = 0; i < d.size(); ++i) v.push_back(static_cast<int64_t>(b.inputs[0][i][0].item<float>()));
  return v;
}

TEST(CalibSampling, SeededDrawWithoutReplacement) {
  auto a = random_subset(numbered(1000), 100, 7);
  auto b = random_subset(numbered(1000), 100, 7);
  auto c = random_subset(numbered(1000), 100, 8);
  ASSERT_EQ(a->size(), 100);
  const auto va = values(*a), vb = values(*b), vc = values(*c);
  EXPECT_EQ(va, vb);
  EXPECT_NE(va, vc);
  EXPECT_EQ(std::set<int64_t>(va.begin(), va.end()).size(), 100u);  // no sample twice
  EXPECT_GT(*std::max_element(va.begin(), va.end()), 500);         // from the whole set, not its head
  // Labels travel with their samples; a batch in the middle is the same samples as the whole.
  Batch mid = a->get(10, 20);
  for (int64_t i = 0; i < 10; ++i) {
    EXPECT_EQ(mid.labels[i].item<int64_t>(), va[10 + i]);
    EXPECT_EQ(static_cast<int64_t>(mid.inputs[0][i][0].item<float>()), va[10 + i]);
  }
  EXPECT_EQ(random_subset(numbered(50), 0, 1)->size(), 50);  // all, shuffled
  EXPECT_NE(a->describe().find("random 100 of numbered"), std::string::npos) << a->describe();
}

TEST(CalibSampling, FmnistCountDrawsFromTheWholeSplit) {
  const std::vector<ValueInfo> in = image_input();
  auto first = open_calibration("fmnist:train:64", in, {}, CalibSampling{});
  auto rnd = open_calibration("fmnist:train:64", in, {}, CalibSampling{true, 0});
  auto again = open_calibration("fmnist:train:64", in, {}, CalibSampling{true, 0});
  ASSERT_EQ(first->size(), 64);
  ASSERT_EQ(rnd->size(), 64);
  EXPECT_FALSE(at::equal(first->get(0, 64).inputs[0], rnd->get(0, 64).inputs[0]));
  EXPECT_TRUE(at::equal(rnd->get(0, 64).inputs[0], again->get(0, 64).inputs[0]));
  EXPECT_EQ(CalibSampling{}.key("fmnist:train:64"), "fmnist:train:64");
  EXPECT_EQ((CalibSampling{true, 3}.key("fmnist:train:64")), "fmnist:train:64#random:3");
  EXPECT_THROW(parse_calib_sampling("sometimes"), Error);
}

TEST(CalibSampling, QuantizeOption) {
  const std::string model = source_dir() + "/models/fmnist-mlp.onnx";
  const CliResult a = run_cli({"quantize", model, "--calib", "fmnist:train:128", "--json", "-q"});
  const CliResult b = run_cli({"quantize", model, "--calib", "fmnist:train:128", "--calib-sample", "random", "--json", "-q"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(a.out.find("calib_sample"), std::string::npos);
  EXPECT_NE(b.out.find("\"calib_sample\": \"random (seed 0)\""), std::string::npos) << b.out;
  EXPECT_EQ(run_cli({"quantize", model, "--calib-sample", "often"}).exit_code, 2);
}

}  // namespace
}  // namespace mixq::test
