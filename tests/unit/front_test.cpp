// The pareto front's points (api/front.h): predicted top-1 stays a percentage when the table's
// single-layer drops add up to more than the reference score.
#include <gtest/gtest.h>

#include <random>

#include "alloc_util.h"
#include "api/front.h"

namespace mixq::test {
namespace {

TEST(Front, PredictedTop1StaysAPercentage) {
  std::mt19937_64 rng(7);
  QuantPlan plan = synthetic_plan(6, rng, false);
  SensitivityTable t = synthetic_table(plan, rng);
  t.ref_top1 = 50;
  for (auto& l : t.layers)
    for (auto& [bits, e] : l.bits) e.dacc = bits == 8 ? 0 : 4.0 * (8 - bits);  // 24 points per layer at 2 bits
  const nlohmann::json points = pareto_front(plan, t, "dl", {}, nullptr, 0.5);
  ASSERT_FALSE(points.empty());
  double lowest = 100;
  for (const auto& p : points) {
    const double top1 = p["predicted_top1"].get<double>();
    EXPECT_GE(top1, 0.0) << p.dump();
    EXPECT_LE(top1, 100.0) << p.dump();
    lowest = std::min(lowest, top1);
  }
  EXPECT_EQ(lowest, 0.0);  // the 2-bit end predicts 6 x 24 = 144 points of drop from 50
}

}  // namespace
}  // namespace mixq::test
