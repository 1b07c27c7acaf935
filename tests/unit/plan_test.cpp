// QuantPlan: defaults, cost accounting, JSON round trip and validation; MixQuant allocation.
#include <ATen/ATen.h>

#include "exec/executor.h"
#include "exec/shapes.h"
#include "quant/plan.h"
#include "search/allocator.h"
#include "graph_util.h"
#include "test_util.h"

namespace mixq {
namespace {

// x[N,1,8,8] -> conv_a(4x1x3x3) -> r -> conv_b(6x4x3x3) and conv_c(6x4x1x1) both read r
//            -> add -> flatten -> fc(Gemm transB=1, [10, 6*4*4]) -> out
Graph test_graph() {
  at::manual_seed(1);
  Graph g = new_graph("plan_test.onnx");
  g.inputs = {float_value("x", {-1, 1, 8, 8})};
  g.outputs = {float_value("out")};
  g.initializers["wa"] = at::randn({4, 1, 3, 3});
  g.initializers["wb"] = at::randn({6, 4, 3, 3}) * 0.1;
  g.initializers["wc"] = at::randn({6, 4, 1, 1});
  g.initializers["bc"] = at::randn({6});
  g.initializers["wf"] = at::randn({10, 96}) * 0.05;
  g.initializers["bf"] = at::randn({10});
  auto node = [](const std::string& name, const std::string& op, std::vector<std::string> in, std::string o) {
    return make_node(name, op, std::move(in), {std::move(o)});
  };
  Attribute stride = ints_attr({2, 2});
  Attribute pads = ints_attr({1, 1, 1, 1});
  Node a = node("conv_a", "Conv", {"x", "wa"}, "ya");
  a.attrs["pads"] = pads;
  Node b = node("conv_b", "Conv", {"r", "wb"}, "yb");
  b.attrs["pads"] = pads;
  b.attrs["strides"] = stride;
  Node c = node("conv_c", "Conv", {"r", "wc", "bc"}, "yc");
  c.attrs["strides"] = stride;
  Node fc = node("fc", "Gemm", {"flat", "wf", "bf"}, "out");
  fc.attrs["transB"] = int_attr(1);
  g.nodes = {a, node("relu", "Relu", {"ya"}, "r"), b, c, node("add", "Add", {"yb", "yc"}, "s"),
             node("flatten", "Flatten", {"s"}, "flat"), fc};
  return g;
}

QuantPlan plan_for(const Graph& g, const PlanDefaults& d) {
  auto layers = find_layers(g);
  Executor ex(g);
  annotate_macs(ex, layers);
  return make_plan(g, layers, d);
}

TEST(Plan, DefaultsPinFirstAndLastAndShareInputs) {
  Graph g = test_graph();
  PlanDefaults d;
  d.wbits = 4;
  d.abits = 4;
  QuantPlan p = plan_for(g, d);
  ASSERT_EQ(p.layers.size(), 4u);
  EXPECT_TRUE(p.layers[0].pinned);
  EXPECT_EQ(p.layers[0].weight_scheme.bits, 8);
  EXPECT_EQ(p.layers[0].input_scheme.bits, 8);
  EXPECT_FALSE(p.layers[1].pinned);
  EXPECT_EQ(p.layers[1].weight_scheme.bits, 4);
  EXPECT_EQ(p.layers[1].input, "r");
  EXPECT_EQ(p.layers[2].input, "r");
  EXPECT_EQ(p.layers[3].weight_scheme.axis, 0);  // Gemm transB=1: rows are outputs
  EXPECT_EQ(p.layers[1].macs, 6 * 4 * 4 * 4 * 9);
  EXPECT_EQ(p.layers[3].macs, 10 * 96);
}

TEST(Plan, CostCountsEveryStoredBit) {
  Graph g = test_graph();
  PlanDefaults d;
  d.wbits = 4;
  d.granularity = Granularity::kPerChannel;
  QuantPlan p = plan_for(g, d);
  // conv_a 8b: 36 w, 4 scales+zp; conv_b 4b: 216 w, 6; conv_c 4b: 24 w, 6, bias 6; fc 4b: 960 w, 10, bias 10
  // (the last layer, but it holds 78% of the weights: not pinned, quant/plan.h is_dominant).
  EXPECT_FALSE(p.layers[3].pinned);
  double bits = 36 * 8 + 4 * 40 + 216 * 4 + 6 * 40 + 24 * 4 + 6 * 40 + 6 * 32 + 960 * 4 + 10 * 40 + 10 * 32;
  EXPECT_EQ(p.cost.size_bytes, static_cast<int64_t>(std::ceil(bits / 8)));
  EXPECT_EQ(p.cost.float_bytes, (36 + 216 + 24 + 6 + 960 + 10) * 4);
  EXPECT_NEAR(p.cost.avg_wbits, (36 * 8 + 216 * 4 + 24 * 4 + 960 * 4) / 1236.0, 1e-12);
  double bops = 0;
  for (const auto& L : p.layers) bops += double(L.macs) * L.weight_scheme.bits * L.input_scheme.bits;
  EXPECT_DOUBLE_EQ(p.cost.bops, bops);
  d.wsymmetric = true;  // no zero points
  QuantPlan ps = plan_for(g, d);
  EXPECT_EQ(p.cost.size_bytes - ps.cost.size_bytes, (4 + 6 + 6 + 10));
}

TEST(Plan, JsonRoundTripAndUserEdits) {
  Graph g = test_graph();
  QuantPlan p = plan_for(g, PlanDefaults{});
  nlohmann::json j = plan_to_json(p);
  j["layers"][1]["weight_quant"]["bits"] = 3;
  j["layers"][1]["weight_quant"]["granularity"] = "per_group";
  j["layers"][1]["weight_quant"]["group_size"] = 12;
  QuantPlan q = plan_from_json(j, p, "edited.json");
  EXPECT_EQ(q.layers[1].weight_scheme.bits, 3);
  EXPECT_EQ(q.layers[1].weight_scheme.granularity, Granularity::kPerGroup);
  EXPECT_LT(q.cost.size_bytes, p.cost.size_bytes + 100);
  EXPECT_EQ(plan_to_json(plan_from_json(plan_to_json(q), p, "x")), plan_to_json(q));
}

void expect_rejected(nlohmann::json j, const QuantPlan& tmpl, const std::string& needle) {
  try {
    plan_from_json(j, tmpl, "bad.json");
    FAIL() << "accepted a bad plan; expected '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad.json"), std::string::npos) << e.what();
  }
}

TEST(Plan, RejectsImpossiblePlans) {
  Graph g = test_graph();
  QuantPlan p = plan_for(g, PlanDefaults{});
  nlohmann::json good = plan_to_json(p);
  auto j = good;
  j["layers"][1]["name"] = "conv_zzz";
  expect_rejected(j, p, "conv_zzz");
  j = good;
  j["layers"][1]["weight_quant"]["bits"] = 9;
  expect_rejected(j, p, "weight bits 9");
  j = good;
  j["layers"][2]["input_quant"]["bits"] = 4;  // conv_c shares 'r' with conv_b (8 bits)
  expect_rejected(j, p, "same tensor 'r'");
  j = good;
  j["layers"].erase(3);
  expect_rejected(j, p, "'fc' is missing");
  j = good;
  j["layers"][1]["weight_quant"]["granularity"] = "per_banana";
  expect_rejected(j, p, "per_banana");
  j = good;
  j["layers"][1]["weight_quant"]["granularity"] = "per_group";
  j["layers"][1]["weight_quant"]["group_size"] = 0;
  expect_rejected(j, p, "group_size >= 1");
  j = good;
  j["mixq_plan_version"] = 7;
  expect_rejected(j, p, "version 7");
}

// Kernel-wise bits (weight_quant.channel_bits): JSON round trip, the cost of each channel at its
// own bits, and clear errors naming the layer for lengths, values and an inconsistent `bits`.
TEST(Plan, ChannelBitsRoundTripCostAndValidation) {
  Graph g = test_graph();
  PlanDefaults d;
  d.wbits = 4;
  QuantPlan p = plan_for(g, d);
  nlohmann::json j = plan_to_json(p);
  EXPECT_FALSE(j["layers"][1]["weight_quant"].contains("channel_bits"));  // absent = uniform
  const std::vector<int> cb = {2, 3, 5, 4, 3, 2};  // conv_b: 6 output channels of 36 weights
  j["layers"][1]["weight_quant"]["bits"] = 5;
  j["layers"][1]["weight_quant"]["channel_bits"] = cb;
  QuantPlan q = plan_from_json(j, p, "kw.json");
  EXPECT_EQ(q.layers[1].channel_bits, cb);
  EXPECT_EQ(q.layers[1].weight_scheme.bits, 5);
  EXPECT_EQ(plan_to_json(plan_from_json(plan_to_json(q), p, "x")), plan_to_json(q));
  // Size: 36 x (2+3+5+4+3+2) bits instead of 216 x 4; avg bits and BOPs by the channels' mean.
  EXPECT_NEAR(layer_size_bits(q.layers[1]) - layer_size_bits(p.layers[1]), 36.0 * 19 - 216.0 * 4, 1e-9);
  EXPECT_NEAR(q.cost.avg_wbits - p.cost.avg_wbits, (36.0 * 19 - 216.0 * 4) / 1236.0, 1e-12);
  EXPECT_NEAR(layer_bops(q.layers[1]), double(q.layers[1].macs) * (19.0 / 6) * q.layers[1].input_scheme.bits, 1e-6);
  EXPECT_DOUBLE_EQ(mean_weight_bits(q.layers[1]), 19.0 / 6);
  // set_channel_bits: the max becomes `bits`; all equal is a plain layer.
  LayerPlan L = q.layers[1];
  set_channel_bits(L, {3, 3, 3, 3, 3, 3});
  EXPECT_TRUE(L.channel_bits.empty());
  EXPECT_EQ(L.weight_scheme.bits, 3);
  set_channel_bits(L, {2, 6, 2, 2, 2, 2});
  EXPECT_EQ(L.weight_scheme.bits, 6);
  EXPECT_EQ(L.channel_bits.size(), 6u);

  auto bad = j;
  bad["layers"][1]["weight_quant"]["channel_bits"] = {2, 3, 5};
  expect_rejected(bad, p, "layer 'conv_b': channel_bits has 3 entries but the weight has 6 output channels");
  bad = j;
  bad["layers"][1]["weight_quant"]["channel_bits"][2] = 9;
  expect_rejected(bad, p, "layer 'conv_b': channel_bits[2] = 9 is not possible");
  bad = j;
  bad["layers"][1]["weight_quant"]["bits"] = 4;
  expect_rejected(bad, p, "layer 'conv_b': with channel_bits, bits must be their maximum (5)");
  bad = j;
  bad["layers"][1]["weight_quant"]["granularity"] = "per_tensor";
  expect_rejected(bad, p, "channel_bits needs a per_channel weight scheme");
}

TEST(MixQuant, BitsShrinkAsQemGrows) {
  Graph g = test_graph();
  QuantPlan p = plan_for(g, PlanDefaults{});
  auto at1 = mixquant_bits(g, p, 1.0, 8);
  EXPECT_EQ(at1, (std::vector<int>{8, 8, 8, 8}));  // e_b <= e_8 only at b = 8
  std::vector<int> prev = at1;
  for (double qem : {2.0, 4.0, 16.0, 64.0, 256.0, 4096.0, 1e6}) {
    auto b = mixquant_bits(g, p, qem, 8);
    for (size_t i = 0; i < b.size(); ++i) EXPECT_LE(b[i], prev[i]) << "qem " << qem;
    prev = b;
  }
  EXPECT_EQ(prev[0], 8);  // pinned
  EXPECT_EQ(prev[1], 2);
}

TEST(MixQuant, BudgetFindsTheSmallestQemWithinIt) {
  Graph g = test_graph();
  QuantPlan p = plan_for(g, PlanDefaults{});
  p.layers[0].pinned = p.layers[3].pinned = false;
  SearchOptions so;
  so.budget_avg_wbits = 4.0;
  AllocContext ctx{g, p, so, nullptr, {}, {}};
  allocate_mixquant(ctx);
  EXPECT_LE(p.cost.avg_wbits, 4.0 + 1e-9);
  double qem = p.search_params.at("qem").get<double>();
  // A slightly smaller QEM would exceed the budget.
  QuantPlan tighter = p;
  auto bits = mixquant_bits(g, tighter, qem * 0.97, 8);
  for (size_t i = 0; i < bits.size(); ++i) tighter.layers[i].weight_scheme.bits = bits[i];
  update_cost(tighter);
  EXPECT_GT(tighter.cost.avg_wbits, 4.0);
}

TEST(MixQuant, UnreachableBudgetGivesTheClosestPlanAndTheMinimum) {
  Graph g = test_graph();
  QuantPlan p = plan_for(g, PlanDefaults{});  // the first layer pinned at 8 (the last holds 78%: not pinned)
  SearchOptions so;
  so.budget_avg_wbits = 2.0;
  AllocContext ctx{g, p, so, nullptr, {}, {}};
  allocate_mixquant(ctx);  // no throw
  ASSERT_TRUE(p.search_params.contains("infeasible"));
  const auto& inf = p.search_params["infeasible"][0];
  EXPECT_NEAR(inf["minimum_feasible"].get<double>(), p.cost.avg_wbits, 1e-9);
  EXPECT_GT(p.cost.avg_wbits, 2.0);
  ASSERT_EQ(inf["binding_layers"].size(), 1u);  // the pinned layer
  EXPECT_EQ(inf["binding_layers"][0]["layer"], p.layers[0].name);
}

}  // namespace
}  // namespace mixq
