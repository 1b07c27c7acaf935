// GemmAct fusion (src/exec/fusion.h): [Flatten ->] Gemm -> activation runs as one addmm on a cached B^T plus the
// activation in place; the fused run matches the unfused one on the MLP fixture and on synthetic
// Gemms (transB on and off, no C), a weight replaced by a hook or changed in place is honoured,
// attributes the kernel does not cover (alpha, transA) are not fused, and the legacy executor
// leaves Gemms alone.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cstdlib>
#include <map>

#include "data/dataset.h"
#include "exec/executor.h"
#include "exec/fusion.h"
#include "graph_util.h"
#include "onnx/import.h"
#include "test_util.h"
#include "exec_util.h"

namespace mixq::test {
namespace {

double rel_err(const at::Tensor& got, const at::Tensor& want) {
  return (got - want).abs().max().item<double>() / std::max(1.0, want.abs().max().item<double>());
}

int count_kind(const Graph& g, FusionKind k) {
  int n = 0;
  for (const auto& grp : find_fusions(g)) n += grp.kind == k;
  return n;
}

// x [N, 6] -> Gemm(W, b, attrs) -> Relu -> y. W is [5, 6] with transB, else [6, 5].
Graph gemm_relu_graph(std::map<std::string, Attribute> attrs, bool with_c = true) {
  at::manual_seed(3);
  Graph g = new_graph("gemm_relu.onnx");
  g.inputs = {float_value("x", {-1, 6}, {"N", ""})};
  g.outputs = {float_value("y")};
  auto tb = attrs.find("transB");
  bool trans_b = tb != attrs.end() && tb->second.i != 0;
  g.initializers["W"] = trans_b ? at::randn({5, 6}) : at::randn({6, 5});
  std::vector<std::string> in = {"x", "W"};
  if (with_c) {
    g.initializers["b"] = at::randn({5});
    in.push_back("b");
  }
  g.nodes = {make_node("gemm", "Gemm", in, {"h"}, std::move(attrs)), make_node("relu", "Relu", {"h"}, {"y"})};
  return g;
}

TEST(FusionGemm, MlpFixtureFusedMatchesUnfused) {
  Graph g = load_onnx(fixture("fmnist-mlp"));
  auto inputs = open_dataset("fmnist:test:32", g.inputs, preprocess_from_metadata(g))->get(0, 32).inputs;
  EXPECT_EQ(count_kind(g, FusionKind::kGemmAct), 2);  // two hidden layers; the logits Gemm stays
  auto groups = find_fusions(g);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].nodes.size(), 3u);  // Flatten -> Gemm -> Relu: the flatten is a view inside
  EXPECT_EQ(groups[0].inputs[0], "input");
  auto fused = make_executor(g, true), plain = make_executor(g, false);
  for (int rep = 0; rep < 2; ++rep) {  // the second run uses the cached B^T
    at::Tensor a = fused->run(inputs).at(0), b = plain->run(inputs).at(0);
    EXPECT_EQ(fused->active_fusion_groups(), 2);
    EXPECT_LE(rel_err(a, b), 1e-5);
    EXPECT_TRUE(at::equal(a.argmax(1), b.argmax(1)));
  }
  // Observing the Gemm's output (interior to the group) falls back to the original nodes.
  int calls = 0;
  fused->add_hook("/net/net.0/Gemm_output_0", [&](const std::string&, at::Tensor&) { ++calls; });
  at::Tensor hooked = fused->run(inputs).at(0);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(fused->active_fusion_groups(), 1);
  EXPECT_LE(rel_err(hooked, plain->run(inputs).at(0)), 1e-5);
  fused->clear_hooks();
  // So does observing the Flatten's output.
  fused->add_hook("/Flatten_output_0", [&](const std::string&, at::Tensor& t) {
    EXPECT_EQ(t.dim(), 2);
    ++calls;
  });
  EXPECT_LE(rel_err(fused->run(inputs).at(0), plain->run(inputs).at(0)), 1e-5);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(fused->active_fusion_groups(), 1);
}

TEST(FusionGemm, SyntheticGemmsMatchUnfused) {
  at::Tensor x = at::randn({7, 6});
  for (bool trans_b : {true, false}) {
    for (bool with_c : {true, false}) {
      Graph g = gemm_relu_graph({{"transB", int_attr(trans_b ? 1 : 0)}}, with_c);
      ASSERT_EQ(count_kind(g, FusionKind::kGemmAct), 1);
      at::Tensor w = g.initializers["W"];
      at::Tensor want = at::matmul(x, trans_b ? w.t() : w);
      if (with_c) want = want + g.initializers["b"];
      want = at::relu(want);
      auto fused = make_executor(g, true), plain = make_executor(g, false);
      at::Tensor a = fused->run({x}).at(0);
      EXPECT_EQ(fused->active_fusion_groups(), 1);
      EXPECT_LE(rel_err(a, plain->run({x}).at(0)), 1e-6) << "transB " << trans_b << " C " << with_c;
      EXPECT_LE(rel_err(a, want), 1e-6);
    }
  }
}

TEST(FusionGemm, WeightReplacedOrChangedInPlaceIsHonoured) {
  Graph g = gemm_relu_graph({{"transB", int_attr(1)}});
  at::Tensor w = g.initializers["W"], b = g.initializers["b"];
  auto fused = make_executor(g, true);
  at::Tensor x = at::randn({4, 6});
  at::Tensor y0 = fused->run({x}).at(0);
  EXPECT_LE(rel_err(y0, at::relu(at::addmm(b, x, w.t()))), 1e-6);
  // A hook replacing W (an inference tensor, made under the executor's InferenceMode).
  fused->add_hook("W", [](const std::string&, at::Tensor& t) { t = t * -2; });
  at::Tensor y1 = fused->run({x}).at(0);
  EXPECT_LE(rel_err(y1, at::relu(at::addmm(b, x, (w * -2).t()))), 1e-6);
  fused->clear_hooks();
  EXPECT_LE(rel_err(fused->run({x}).at(0), y0), 1e-6);
  // The initializer changed in place (its version counter moves): the cached B^T is refreshed.
  // The executor holds the graph's initializers by reference (tensors share storage).
  const at::Tensor& held = fused->graph().initializers.at("W");
  {
    at::NoGradGuard ng;
    const_cast<at::Tensor&>(held).mul_(0.5);
  }
  EXPECT_LE(rel_err(fused->run({x}).at(0), at::relu(at::addmm(b, x, held.t()))), 1e-6);
}

TEST(FusionGemm, AttributesOutsideTheKernelAndLegacyAreNotFused) {
  EXPECT_EQ(count_kind(gemm_relu_graph({{"transB", int_attr(1)}, {"alpha", float_attr(0.5f)}}), FusionKind::kGemmAct), 0);
  EXPECT_EQ(count_kind(gemm_relu_graph({{"transB", int_attr(1)}, {"beta", float_attr(2.0f)}}), FusionKind::kGemmAct), 0);
  EXPECT_EQ(count_kind(gemm_relu_graph({{"transA", int_attr(1)}}), FusionKind::kGemmAct), 0);
  const char* old = std::getenv("MIXQ_EXEC_LEGACY");
  std::string saved = old ? old : "";
  setenv("MIXQ_EXEC_LEGACY", "1", 1);
  int legacy = count_kind(gemm_relu_graph({{"transB", int_attr(1)}}), FusionKind::kGemmAct);
  if (old) setenv("MIXQ_EXEC_LEGACY", saved.c_str(), 1); else unsetenv("MIXQ_EXEC_LEGACY");
  EXPECT_EQ(legacy, 0);
}

}  // namespace
}  // namespace mixq::test
