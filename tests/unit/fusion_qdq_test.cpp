// The QuantDequant fusions (exec/fusion.h): [Clip ->] QuantizeLinear -> DequantizeLinear in one
// pass, and in place on the result of a Conv / ConvAct / Mul / Add that only the QDQ reads, give
// the unfused nodes' bits exactly (ties, saturation, uint8/int8 zero points, channels-last), on
// hand-built chains and on a fixture's QDQ graph; run(feeds, fetches, fused) uses the groups and
// gives run(inputs)'s bits from a cut that splits no group.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstdlib>
#include <limits>
#include <map>
#include <set>

#include "api/allocate_step.h"
#include "exec/executor.h"
#include "exec/fusion.h"
#include "graph_util.h"
#include "quant/qdq.h"
#include "quant/quantize.h"
#include "test_util.h"
#include "exec_util.h"

namespace mixq::test {
namespace {

std::map<std::string, int> kinds(const Graph& g) {
  std::map<std::string, int> n;
  for (const auto& grp : find_fusions(g)) n[fusion_kind_name(grp.kind)]++;
  return n;
}

// x [2, 4, 5, 6] -> producer -> [Clip ->] Q -> DQ -> y. producer: "" (none), "Mul" (x * m),
// "ConvRelu" (Conv 4->4 3x3 pad 1, then Relu).
Graph chain(const std::string& producer, bool clip, bool int8, float scale, int zp) {
  Graph g = new_graph("qdq-chain.onnx");
  g.inputs.push_back(float_value("x", {-1, 4, 5, 6}));
  std::string v = "x";
  if (producer == "Mul") {
    g.initializers["m"] = at::linspace(-1.5, 2.5, 6).reshape({1, 1, 1, 6});
    g.nodes.push_back(make_node("mul", "Mul", {v, "m"}, {"p"}));
    v = "p";
  } else if (producer == "ConvRelu") {
    at::manual_seed(5);
    g.initializers["W"] = at::randn({4, 4, 3, 3}) * 0.3;
    g.initializers["B"] = at::randn({4}) * 0.1;
    g.nodes.push_back(make_node("conv", "Conv", {v, "W", "B"}, {"c"}, {{"pads", ints_attr({1, 1, 1, 1})}}));
    g.nodes.push_back(make_node("relu", "Relu", {"c"}, {"p"}));
    v = "p";
  }
  g.initializers["s"] = at::scalar_tensor(scale, at::kFloat);
  g.initializers["z"] = at::scalar_tensor(zp, int8 ? at::kChar : at::kByte);
  if (clip) {
    const float qmin = int8 ? -8 : 0, qmax = int8 ? 7 : 15;  // 4-bit codes, as quant/qdq.cpp emits them
    g.initializers["lo"] = at::scalar_tensor((qmin - zp) * scale);
    g.initializers["hi"] = at::scalar_tensor((qmax - zp) * scale);
    g.nodes.push_back(make_node("clip", "Clip", {v, "lo", "hi"}, {"clipped"}));
    v = "clipped";
  }
  g.nodes.push_back(make_node("q", "QuantizeLinear", {v, "s", "z"}, {"q"}));
  g.nodes.push_back(make_node("dq", "DequantizeLinear", {"q", "s", "z"}, {"y"}));
  g.outputs.push_back(float_value("y"));
  return g;
}

// Random values plus exact ties (k + 0.5) * scale, saturating and (inf) infinite ones. (NaN is
// outside the guarantee: the nodes' result depends on how the platform converts NaN to 8 bits.)
at::Tensor test_input(float scale, bool channels_last, bool inf = true) {
  at::manual_seed(3);
  at::Tensor x = at::randn({2, 4, 5, 6}) * 40 * scale;
  at::Tensor flat = x.view({-1});
  for (int64_t i = 0; i < 60; ++i) flat[i] = (static_cast<float>(i - 30) + 0.5f) * scale;
  flat[60] = 1e9f;
  flat[61] = -1e9f;
  flat[62] = inf ? std::numeric_limits<float>::infinity() : 3e38f;
  flat[63] = inf ? -std::numeric_limits<float>::infinity() : -3e38f;
  flat[64] = -0.0f;
  return channels_last ? x.contiguous(at::MemoryFormat::ChannelsLast) : x;
}

TEST(FusionQdq, ChainsGiveTheNodesBitsExactly) {
  for (const std::string producer : {"", "Mul", "ConvRelu"})
    for (bool clip : {false, true})
      for (bool int8 : {false, true})
        for (bool cl : {false, true}) {
          const float scale = 0.0371f;
          const int zp = int8 ? -3 : 7;
          Graph g = chain(producer, clip, int8, scale, zp);
          auto k = kinds(g);
          const std::string what = "producer '" + producer + "' clip " + std::to_string(clip) + " int8 " +
                                   std::to_string(int8) + " channels-last " + std::to_string(cl);
          if (producer.empty()) EXPECT_EQ(k["QuantDequant"], 1) << what;
          else EXPECT_EQ(k["ProducerQuantDequant"], 1) << what;
          auto fused = make_executor(g, true);
          auto plain = make_executor(g, false);
          const bool inf = producer != "ConvRelu";  // a convolution would sum inf and -inf
          at::Tensor x = test_input(scale, cl, inf);
          at::Tensor a = fused->run({x}).at(0), b = plain->run({x}).at(0);
          EXPECT_EQ(fused->active_fusion_groups(), 1) << what;
          EXPECT_TRUE(at::equal(a, b)) << what << ": max diff " << (a - b).abs().max().item<float>();
          EXPECT_EQ(a.strides(), b.strides()) << what;
          // The input must be untouched (the in-place QDQ writes only the producer's buffer).
          EXPECT_TRUE(at::equal(x, test_input(scale, cl, inf))) << what;
          // The same through run(feeds, fetches, fused).
          at::Tensor c = fused->run({{"x", x}}, {"y"}, true).at("y");
          EXPECT_TRUE(at::equal(c, b)) << what;
        }
}

// A value the QDQ shares with another reader is not quantized in place: the QDQ stays alone.
TEST(FusionQdq, ProducerWithAnotherReaderKeepsItsBuffer) {
  Graph g = chain("Mul", false, false, 0.05f, 0);
  g.outputs.push_back(float_value("p"));
  auto k = kinds(g);
  EXPECT_EQ(k["ProducerQuantDequant"], 0);
  EXPECT_EQ(k["QuantDequant"], 1);
  auto fused = make_executor(g, true);
  auto plain = make_executor(g, false);
  at::Tensor x = test_input(0.05f, false);
  auto a = fused->run({x}), b = plain->run({x});
  EXPECT_TRUE(at::equal(a[0], b[0]));
  EXPECT_TRUE(at::equal(a[1], b[1]));  // p itself, not overwritten by the QDQ
}

// The mobilenetv2 fixture quantized W8A8 with some activations at 4 bits (Clip -> Q -> DQ), as the
// sensitivity probe runs it: fused and unfused QDQ graphs give the same logits bit for bit, and
// run(feeds, fetches, fused) from inputs and from a cut before a convolution gives them too.
TEST(FusionQdq, FixtureQdqGraphRunsFusedWithTheSameBits) {
  PlanDefaults d;
  d.wbits = 8;
  PlanData data;
  data.calib = "fmnist:train:64";
  PreparedPlan pp = prepare_plan(fixture("fmnist-mobilenetv2"), d, "minmax", data);
  int n4 = 0;
  for (auto& L : pp.plan.layers)
    if (L.quantize_input && (n4++ % 3) == 1) L.input_scheme.bits = 4;
  QuantizeOptions qo;
  qo.progress = false;
  QuantizedModel qm = quantize_model(pp.prepared, pp.plan, *pp.calib, qo);
  Graph qg = qdq_graph(qm);
  auto k = kinds(qg);
  EXPECT_GT(k["ProducerQuantDequant"], 5);
  auto fused = make_executor(qg, true);
  auto plain = make_executor(qg, false);
  at::Tensor x = pp.calib->get(0, 32).inputs.at(0);
  at::Tensor a = fused->run({x}).at(0), b = plain->run({x}).at(0);
  EXPECT_TRUE(at::equal(a, b)) << "max diff " << (a - b).abs().max().item<float>();
  const std::string in = qg.inputs[0].name, out = qg.outputs[0].name;
  EXPECT_TRUE(at::equal(fused->run({{in, x}}, {out}, true).at(out), b));
  // A cut before a convolution in the second half that no active group spans: feed every value
  // made before it and read at or after it.
  auto spans = fused->active_fusion_spans();
  ASSERT_FALSE(spans.empty());
  int cut = -1;
  for (int i = static_cast<int>(qg.nodes.size()) / 2; i < static_cast<int>(qg.nodes.size()) && cut < 0; ++i) {
    bool inside = false;
    for (auto [f, l] : spans) inside = inside || (f < i && i <= l);
    if (!inside && qg.nodes[i].op_type == "Conv") cut = i;
  }
  ASSERT_GE(cut, 0);
  std::set<std::string> made, need;
  for (int i = 0; i < cut; ++i)
    for (const auto& o : qg.nodes[i].outputs) made.insert(o);
  for (size_t i = cut; i < qg.nodes.size(); ++i)
    for (const auto& v : qg.nodes[i].inputs)
      if (made.count(v)) need.insert(v);
  std::vector<std::string> fetch(need.begin(), need.end());
  auto values = fused->run({{in, x}}, fetch, true);
  at::Tensor c = fused->run(values, {out}, true).at(out);
  EXPECT_TRUE(at::equal(c, b)) << "from the cut before node " << cut;
}

}  // namespace
}  // namespace mixq::test
