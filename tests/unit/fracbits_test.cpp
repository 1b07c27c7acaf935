// FracBits (search/fracbits.h): at an integer lambda the interpolated quantizer is the plain one
// (weights and activations), between integers it is the linear mix with lambda's gradient the
// difference of the two quantizers; the bisection for the global offset meets a budget within 1%
// on a many-layer cost; end to end the allocator never exceeds the budget and the job quantizes.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <random>

#include <nlohmann/json.hpp>

#include "quant/methods/fused_quant.h"
#include "quant/quantizer.h"
#include "search/fracbits.h"
#include "search/fracbits_parts.h"
#include "test_util.h"

namespace mixq::test {
namespace {

QScheme scheme_at(int bits, Granularity g) {
  QScheme s;
  s.bits = bits;
  s.granularity = g;
  return s;
}

TEST(FracBits, IntegerLambdaIsThePlainQuantizer) {
  at::manual_seed(11);
  at::Tensor w = at::randn({9, 5, 3});
  auto q_w = [&](int bits) {
    QScheme s = scheme_at(bits, Granularity::kPerChannel);
    return fake_quantize(w, weight_params(w, s, RangeOptions{}), s);
  };
  at::Tensor x = at::randn({4, 7, 6}) * 3;
  auto q_x = [&](int bits) {
    QScheme s = scheme_at(bits, Granularity::kPerTensor);
    QParams p = params_from_range(at::scalar_tensor(-2.5f), at::scalar_tensor(4.0f), s);
    return fake_quant_fused(x, p.scale.reshape({}), p.zero_point.reshape({}), double(s.qmin()), double(s.qmax()));
  };
  for (int bits = kFracBitsMin; bits <= kFracBitsMax; ++bits) {
    at::Tensor lam = at::full({}, double(bits), at::kFloat);
    EXPECT_TRUE(at::equal(fracbits_interpolate(lam, q_w), q_w(bits))) << bits << " bits, weights";
    EXPECT_TRUE(at::equal(fracbits_interpolate(lam, q_x), q_x(bits))) << bits << " bits, activations";
  }
  // Between integers: the mix, and lambda learns through the interpolation weights only.
  at::Tensor lam = at::full({}, 4.25, at::kFloat).requires_grad_(true);
  at::Tensor y = fracbits_interpolate(lam, q_w);
  EXPECT_TRUE(at::allclose(y, 0.25 * q_w(5) + 0.75 * q_w(4), 1e-6, 1e-6));
  at::Tensor g = at::randn(w.sizes());
  (y * g).sum().backward();
  EXPECT_NEAR(lam.grad().item<double>(), ((q_w(5) - q_w(4)) * g).sum().item<double>(), 1e-4);
}

TEST(FracBits, BisectionMeetsTheBudgetWithinOnePercent) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> lam(2.0, 8.0), size(100, 5000);
  for (double target : {3.0, 4.0, 5.5}) {
    std::vector<double> l(300), p(300);
    double total = 0;
    for (size_t i = 0; i < l.size(); ++i) l[i] = lam(rng), p[i] = size(rng), total += p[i];
    auto ratio = [&](double d) {
      double bits = 0;
      for (size_t i = 0; i < l.size(); ++i) bits += p[i] * fracbits_round(l[i], d);
      return bits / (total * target);
    };
    OffsetSearch r = fracbits_offset(ratio, -8, 8, 40);
    EXPECT_TRUE(r.feasible);
    EXPECT_LE(r.ratio, 1.0) << target;
    EXPECT_GE(r.ratio, 0.99) << target;
    EXPECT_DOUBLE_EQ(r.ratio, ratio(r.offset));
    EXPECT_LE(r.tries, 40);
  }
  // An impossible budget is reported, not hidden.
  OffsetSearch r = fracbits_offset([](double) { return 2.0; }, -8, 8, 40);
  EXPECT_FALSE(r.feasible);
  EXPECT_EQ(fracbits_round(1.2, 0), 2);
  EXPECT_EQ(fracbits_round(7.7, 0.5), 8);
  EXPECT_EQ(fracbits_round(4.49, 0), 4);
}

TEST(FracBits, CliMeetsSizeAndBopsBudgets) {
  // Size: the average weight bits never exceed the budget; the plan finishes with --method mse.
  CliResult s = run_cli({"quantize", fixture("fmnist-mobilenetv2"), "--search", "fracbits", "--budget-bits", "3",
                         "--calib", "fmnist:train:64", "--fracbits-iters", "6", "--fracbits-batch", "32", "--method",
                         "mse", "--json", "-q"});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  auto j = nlohmann::json::parse(s.out);
  EXPECT_EQ(j["search"], "fracbits");
  EXPECT_LE(j["avg_wbits"].get<double>(), 3.0 + 1e-9);
  EXPECT_GE(j["avg_wbits"].get<double>(), 0.99 * 3.0) << j["search_params"].dump();  // 21 layers: close enough
  EXPECT_LE(j["search_params"]["budget_ratio"].get<double>(), 1.0);
  EXPECT_FALSE(j["search_params"]["learn_activations"].get<bool>());
  // BOPs: activations learned too; BOPs within the budget.
  CliResult b = run_cli({"quantize", fixture("fmnist-resnet"), "--search", "fracbits", "--budget-bops", "3e8",
                         "--calib", "fmnist:train:64", "--fracbits-iters", "4", "--fracbits-batch", "32", "--json",
                         "-q"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  auto jb = nlohmann::json::parse(b.out);
  EXPECT_LE(jb["bops"].get<double>(), 3e8);
  EXPECT_TRUE(jb["search_params"]["learn_activations"].get<bool>());
  EXPECT_GT(jb["search_params"]["lambda_a"].size(), 0u);
  // No budget: a clear usage error.
  CliResult n = run_cli({"quantize", fixture("fmnist-resnet"), "--search", "fracbits", "--calib", "fmnist:train:16", "-q"});
  EXPECT_EQ(n.exit_code, 2) << n.err;
  EXPECT_NE(n.err.find("needs a size or BOPs budget"), std::string::npos) << n.err;
}

TEST(FracBits, TrainingModeFineTunesWeightsAndFreezesBitsAt80Percent) {
  TempDir d;
  CliResult t = run_cli({"quantize", fixture("fmnist-resnet"), "--search", "fracbits", "--budget-bits", "3",
                         "--calib", "fmnist:train:64", "--train-data", "fmnist:train:320", "--epochs", "1",
                         "--fracbits-batch", "32", "--eval", "fmnist:test:200", "--plan-out", d.file("plan.json"),
                         "--json", "-q"});
  ASSERT_EQ(t.exit_code, 0) << t.err;
  auto j = nlohmann::json::parse(t.out);
  const auto& sp = j["search_params"];
  EXPECT_EQ(sp["mode"], "training");
  EXPECT_EQ(sp["iters"].get<int>(), 10);      // 320 samples / 32 per step, one epoch
  EXPECT_EQ(sp["frozen_at"].get<int>(), 8);   // bits frozen after 80% of the steps
  EXPECT_LE(j["avg_wbits"].get<double>(), 3.0 + 1e-9);
  // The same bits without training: the trained weights give other outputs.
  CliResult p = run_cli({"quantize", fixture("fmnist-resnet"), "--plan", d.file("plan.json"), "--calib",
                         "fmnist:train:64", "--eval", "fmnist:test:200", "--json", "-q"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  auto jp = nlohmann::json::parse(p.out);
  EXPECT_EQ(jp["avg_wbits"], j["avg_wbits"]);
  EXPECT_NE(jp["loss_quant"].get<double>(), j["loss_quant"].get<double>());
  // Unlabelled training data is refused with a message.
  CliResult n = run_cli({"quantize", fixture("fmnist-resnet"), "--search", "fracbits", "--budget-bits", "3", "--calib",
                         "fmnist:train:16", "--train-data", source_dir() + "/tests/fixtures/wild-a.npz", "-q"});
  EXPECT_NE(n.exit_code, 0);
}

// Kernel-wise: channel c of the interpolation is the scalar interpolation at lambda[c] (its own
// floor and ceil quantizers), the plain per-channel quantizer at integer lambdas, and the gradient
// of lambda[c] sees only channel c.
TEST(FracBits, ChannelInterpolationIsTheScalarOnePerChannel) {
  at::manual_seed(13);
  for (int64_t axis : {0, 1}) {
    at::Tensor w = axis == 0 ? at::randn({6, 4, 3}) : at::randn({10, 6});
    auto q_w = [&](int bits) {
      QScheme s = scheme_at(bits, Granularity::kPerChannel);
      s.axis = axis;
      return fake_quantize(w, weight_params(w, s, RangeOptions{}), s);
    };
    // Integer bits per channel: the plain quantizer of each channel at its bits, exactly.
    const std::vector<float> ints = {2, 8, 3, 5, 4, 7};
    at::Tensor li = at::tensor(ints);
    at::Tensor y = fracbits_interpolate_channels(li, axis, q_w);
    for (int64_t c = 0; c < 6; ++c)
      EXPECT_TRUE(at::equal(y.select(axis, c), q_w(int(ints[size_t(c)])).select(axis, c))) << axis << " " << c;
    // Fractional: per channel the scalar interpolation; gradient per channel.
    at::Tensor lf = at::tensor(std::vector<float>{2.5f, 7.75f, 3.1f, 4.0f, 5.9f, 6.2f}).requires_grad_(true);
    at::Tensor yf = fracbits_interpolate_channels(lf, axis, q_w);
    at::Tensor g = at::randn(w.sizes());
    (yf * g).sum().backward();
    for (int64_t c = 0; c < 6; ++c) {
      at::Tensor lc = lf.detach()[c].clone().requires_grad_(true);
      at::Tensor yc = fracbits_interpolate(lc, q_w);
      EXPECT_TRUE(at::allclose(yf.select(axis, c), yc.select(axis, c), 1e-6, 1e-6)) << axis << " " << c;
      (yc.select(axis, c) * g.select(axis, c)).sum().backward();
      EXPECT_NEAR(lf.grad()[c].item<double>(), lc.grad().item<double>(), 1e-4) << axis << " " << c;
    }
  }
}

// Kernel-wise freeze on a synthetic plan: random per-channel lambdas, the offset + fill meet a
// size budget within 1% (never over), and the frozen bits land in channel_bits with bits = max.
TEST(FracBits, KernelWiseFreezeMeetsTheBudgetWithinOnePercent) {
  std::mt19937 rng(21);
  std::uniform_real_distribution<double> lam(2.0, 8.0);
  QuantPlan plan;
  for (int i = 0; i < 6; ++i) {
    LayerPlan L;
    L.name = "conv" + std::to_string(i);
    L.op = "Conv";
    L.weight_shape = {8 + 4 * i, 3, 3, 3};
    L.params = L.weight_shape[0] * 27;
    L.macs = L.params * 100;
    L.weight_scheme.bits = 8;
    L.weight_scheme.granularity = Granularity::kPerChannel;
    L.pinned = i == 0;
    L.input = "x" + std::to_string(i);
    plan.layers.push_back(L);
  }
  update_cost(plan);
  const FracTargets t = fracbits_targets(plan, false, true);
  ASSERT_EQ(t.layers.size(), 5u);
  for (double target : {3.0, 4.0, 5.5}) {
    std::vector<std::vector<double>> lw;
    for (size_t k = 0; k < t.layers.size(); ++k) {
      lw.emplace_back(size_t(t.channels[k]));
      for (double& l : lw.back()) l = lam(rng);
    }
    Budget b;
    b.avg_wbits = target;
    QuantPlan p = plan;
    FracFreeze fz = fracbits_freeze(p, t, b, lw, {}, 40);
    EXPECT_TRUE(fz.off.feasible);
    EXPECT_LE(p.cost.avg_wbits, target + 1e-12);
    EXPECT_GE(p.cost.avg_wbits, 0.99 * target) << target;
    int mixed = 0;
    for (size_t k = 0; k < t.layers.size(); ++k) {
      const LayerPlan& L = p.layers[t.layers[k]];
      if (L.channel_bits.empty()) continue;
      ++mixed;
      EXPECT_EQ(L.weight_scheme.bits, *std::max_element(L.channel_bits.begin(), L.channel_bits.end()));
      EXPECT_EQ(int64_t(L.channel_bits.size()), t.channels[k]);
    }
    EXPECT_GT(mixed, 0) << target;
    EXPECT_EQ(p.layers[0].weight_scheme.bits, 8);  // pinned: untouched
  }
}

// Kernel-wise FracBits end to end: per-channel bits in the plan, the budget met within 1% (one
// channel's bit is a fine step, so the fill lands close), activations per layer.
TEST(FracBits, KernelWiseMeetsTheBudgetWithinOnePercent) {
  TempDir d;
  for (const char* budget : {"3", "4"}) {
    CliResult s = run_cli({"quantize", fixture("fmnist-resnet"), "--search", "fracbits", "--fracbits-granularity",
                           "channel", "--budget-bits", budget, "--calib", "fmnist:train:64", "--fracbits-iters", "6",
                           "--fracbits-batch", "32", "--method", "mse", "--plan-out", d.file("kw.json"), "--json", "-q"});
    ASSERT_EQ(s.exit_code, 0) << s.err;
    auto j = nlohmann::json::parse(s.out);
    const double target = std::stod(budget);
    EXPECT_EQ(j["search_params"]["granularity"], "channel");
    EXPECT_LE(j["avg_wbits"].get<double>(), target + 1e-9);
    EXPECT_GE(j["avg_wbits"].get<double>(), 0.99 * target) << j["search_params"].dump();
    auto plan = nlohmann::json::parse(read_file(d.file("kw.json")));
    int kw = 0;
    for (const auto& L : plan["layers"])
      if (L["weight_quant"].contains("channel_bits")) {
        ++kw;
        int mx = 0;
        for (int b : L["weight_quant"]["channel_bits"]) {
          mx = std::max(mx, b);
          EXPECT_GE(b, 2);
          EXPECT_LE(b, 8);
        }
        EXPECT_EQ(L["weight_quant"]["bits"].get<int>(), mx);
      }
    EXPECT_GT(kw, 0) << "no layer got per-channel bits";
  }
  // Per-tensor weight scales have no channel grids to give bits to.
  CliResult t = run_cli({"quantize", fixture("fmnist-resnet"), "--search", "fracbits", "--fracbits-granularity",
                         "channel", "--granularity", "per_tensor", "--budget-bits", "3", "--calib", "fmnist:train:16",
                         "-q"});
  EXPECT_EQ(t.exit_code, 2) << t.err;
  EXPECT_NE(t.err.find("needs per-channel weight scales"), std::string::npos) << t.err;
}

}  // namespace
}  // namespace mixq::test
