// Executor fusion (src/exec/fusion.h): the decomposed LayerNorm / GELU / Linear chains of the ViT
// fixture are found and fused, the fused run matches the unfused one, hooks keep working.
#include <ATen/ATen.h>

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

// A fixture's graph and its first n test images, preprocessed as the fixture expects.
struct Loaded {
  Graph graph;
  std::vector<at::Tensor> inputs;
};

Loaded load_fixture(const std::string& name, int64_t n) {
  Loaded r;
  r.graph = load_onnx(fixture(name));
  Preprocess pp = preprocess_from_metadata(r.graph);
  r.inputs = open_dataset("fmnist:test:" + std::to_string(n), r.graph.inputs, pp)->get(0, n).inputs;
  return r;
}

const Loaded& vit() {
  static Loaded v = load_fixture("fmnist-vit", 32);
  return v;
}

double rel_err(const at::Tensor& got, const at::Tensor& want) {
  return (got - want).abs().max().item<double>() / std::max(1.0, want.abs().max().item<double>());
}

// The ViT fixture has 3 transformer blocks, each with ln1, ln2 (LayerNorm), one GELU and six
// Linear layers (q, k, v, attn.out, fc1, fc2, exported as MatMul + Add(bias)), one attention
// (MatMul -> Mul(0.25) -> Softmax -> MatMul), plus the final LayerNorm: 3*2+1 = 7 LayerNorm,
// 3 GELU, 18 Linear, 3 Attention. The head is a Gemm (already one kernel).
TEST(Fusion, FindsTheViTChains) {
  auto groups = find_fusions(vit().graph);
  std::map<std::string, int> count;
  for (const auto& g : groups) count[fusion_kind_name(g.kind)]++;
  EXPECT_EQ(count["LayerNorm"], 7);
  EXPECT_EQ(count["Gelu"], 3);
  EXPECT_EQ(count["Linear"], 18);
  EXPECT_EQ(count["Attention"], 3);
  EXPECT_EQ(groups.size(), 31u);
  for (const auto& g : groups) {
    if (g.kind == FusionKind::kLayerNorm) {
      EXPECT_EQ(g.nodes.size(), 9u);
      EXPECT_EQ(g.interior.size(), 8u);
      EXPECT_EQ(g.constants.size(), 2u);  // the exponent 2 and eps
    } else if (g.kind == FusionKind::kGelu) {
      EXPECT_EQ(g.nodes.size(), 5u);
      EXPECT_EQ(g.constants.size(), 3u);  // sqrt(2), 1, 0.5
    } else if (g.kind == FusionKind::kAttention) {
      EXPECT_EQ(g.nodes.size(), 4u);
      EXPECT_EQ(g.interior.size(), 3u);   // scores, scaled scores, probabilities
      EXPECT_EQ(g.constants.size(), 1u);  // the scale
    } else {
      EXPECT_EQ(g.nodes.size(), 2u);
    }
  }
  // 91 nodes become 31 fused ones (60 fewer kernels per run).
  auto ex = make_executor(vit().graph, true);
  EXPECT_EQ(ex->fusion_groups(), 31u);
  ex->run(vit().inputs);
  EXPECT_EQ(ex->active_fusion_groups(), 31);
  EXPECT_EQ(make_executor(vit().graph, false)->fusion_groups(), 0u);
}

TEST(Fusion, FusedMatchesUnfusedOnRealImages) {
  auto fused = make_executor(vit().graph, true);
  auto plain = make_executor(vit().graph, false);
  at::Tensor a = fused->run(vit().inputs).at(0);
  at::Tensor b = plain->run(vit().inputs).at(0);
  ASSERT_EQ(a.sizes(), b.sizes());
  EXPECT_LE(rel_err(a, b), 1e-5);
  EXPECT_TRUE(at::equal(a.argmax(1), b.argmax(1)));
  // The subgraph path runs the original nodes and agrees too.
  auto sub = fused->run({{"input", vit().inputs[0]}}, {"logits"}).at("logits");
  EXPECT_LE(rel_err(sub, b), 1e-5);
}

TEST(Fusion, HookOnInteriorValueFallsBackForThatGroupOnly) {
  auto fused = make_executor(vit().graph, true);
  at::Tensor base = fused->run(vit().inputs).at(0);
  int calls = 0;
  std::vector<int64_t> shape;
  int id = fused->add_hook("/blocks/blocks.0/act/Erf_output_0", [&](const std::string&, at::Tensor& t) {
    ++calls;
    shape = t.sizes().vec();
  });
  at::Tensor hooked = fused->run(vit().inputs).at(0);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(shape, (std::vector<int64_t>{32, 49, 128}));
  EXPECT_EQ(fused->active_fusion_groups(), 30);  // only block 0's GELU runs unfused
  EXPECT_LE(rel_err(hooked, base), 1e-5);
  // An interior value of a LayerNorm and of a Linear.
  fused->add_hook("/ln/Sqrt_output_0", [&](const std::string&, at::Tensor&) { ++calls; });
  fused->add_hook("/blocks/blocks.1/fc1/MatMul_output_0", [&](const std::string&, at::Tensor&) { ++calls; });
  at::Tensor hooked3 = fused->run(vit().inputs).at(0);
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(fused->active_fusion_groups(), 28);
  EXPECT_LE(rel_err(hooked3, base), 1e-5);
  // The softmax of block 2's attention (calibration observes it when a plan quantizes it).
  int sm_calls = 0;
  fused->add_hook("/blocks/blocks.2/attn/Softmax_output_0", [&](const std::string&, at::Tensor& t) {
    ++sm_calls;
    EXPECT_EQ(t.sizes().vec(), (std::vector<int64_t>{32, 4, 49, 49}));
  });
  at::Tensor hooked4 = fused->run(vit().inputs).at(0);
  EXPECT_EQ(sm_calls, 1);
  EXPECT_EQ(fused->active_fusion_groups(), 27);
  EXPECT_LE(rel_err(hooked4, base), 1e-5);
  fused->clear_hooks();
  fused->run(vit().inputs);
  EXPECT_EQ(fused->active_fusion_groups(), 31);
  (void)id;
}

TEST(Fusion, HooksOnGroupInputsAndOutputsFireAndReplaceConsistently) {
  auto fused = make_executor(vit().graph, true);
  auto plain = make_executor(vit().graph, false);
  at::Tensor base = plain->run(vit().inputs).at(0);
  // Replace block 0's ln2 input (also the residual) and fc1's weight; observe the GELU output.
  int out_calls = 0;
  for (Executor* ex : {fused.get(), plain.get()}) {
    ex->add_hook("/blocks/blocks.0/Add_output_0", [](const std::string&, at::Tensor& t) { t = t * 1.5 + 0.25; });
    ex->add_hook("onnx::MatMul_279", [](const std::string&, at::Tensor& t) { t = t * 0.5; });
    ex->add_hook("/blocks/blocks.0/act/Mul_1_output_0", [&](const std::string&, at::Tensor& t) {
      EXPECT_EQ(t.size(-1), 128);
      ++out_calls;
    });
  }
  at::Tensor a = fused->run(vit().inputs).at(0);
  EXPECT_EQ(fused->active_fusion_groups(), 31);  // hooks on group inputs/outputs keep fusion
  at::Tensor b = plain->run(vit().inputs).at(0);
  EXPECT_EQ(out_calls, 2);
  EXPECT_GT((b - base).abs().max().item<double>(), 1e-2);  // the replacement matters
  EXPECT_LE(rel_err(a, b), 1e-5);
}

// x[N,4] -> MatMul(W) -> y -> Add(b) -> z (output); `second` adds Relu(y) -> r as another consumer
// of the interior value y; `y_out` makes y a graph output instead.
Graph linear_graph(bool second, bool y_out) {
  at::manual_seed(1);
  Graph g = new_graph("linear.onnx");
  g.inputs = {float_value("x", {-1, 4}, {"N", ""})};
  g.outputs = {float_value("z")};
  g.initializers["W"] = at::randn({4, 3});
  g.initializers["b"] = at::randn({3});
  g.nodes = {make_node("mm", "MatMul", {"x", "W"}, {"y"}), make_node("add", "Add", {"b", "y"}, {"z"})};
  if (second) {
    g.nodes.push_back(make_node("relu", "Relu", {"y"}, {"r"}));
    g.outputs.push_back(float_value("r"));
  }
  if (y_out) {
    g.outputs.push_back(float_value("y"));
  }
  return g;
}

TEST(Fusion, InteriorValueWithAnotherConsumerIsNotFused) {
  EXPECT_EQ(find_fusions(linear_graph(false, false)).size(), 1u);
  EXPECT_EQ(find_fusions(linear_graph(true, false)).size(), 0u);
  EXPECT_EQ(find_fusions(linear_graph(false, true)).size(), 0u);

  Graph g = linear_graph(true, false);
  at::Tensor x = at::randn({5, 4});
  at::Tensor want = at::matmul(x, g.initializers["W"]);
  auto ex = make_executor(std::move(g), true);
  auto out = ex->run({x});
  EXPECT_EQ(ex->active_fusion_groups(), 0);
  EXPECT_TRUE(at::allclose(out.at(1), at::relu(want)));
}

TEST(Fusion, SyntheticLinearFusesAndFallsBackOnShapesItDoesNotCover) {
  Graph g = linear_graph(false, false);
  at::Tensor w = g.initializers["W"], b = g.initializers["b"];
  auto ex = make_executor(std::move(g), true);
  at::Tensor x = at::randn({5, 4});
  at::Tensor z = ex->run({x}).at(0);
  EXPECT_EQ(ex->active_fusion_groups(), 1);
  EXPECT_TRUE(at::allclose(z, at::matmul(x, w) + b, 1e-5, 1e-6));
  // A hook replacing the bias with a [1,3] tensor: accepts() says no, the original nodes run.
  ex->add_hook("b", [](const std::string&, at::Tensor& t) { t = t.reshape({1, 3}) * 2; });
  z = ex->run({x}).at(0);
  EXPECT_EQ(ex->active_fusion_groups(), 1);
  EXPECT_TRUE(at::allclose(z, at::matmul(x, w) + 2 * b, 1e-5, 1e-6));
}


// Conv -> BatchNormalization [-> Relu] on the ResNet fixture: all 11 BN nodes fold into their
// convolutions (the ones followed by a ReLU take it in place: 5 of them, the others feed a
// residual Add, whose ReLU fuses with it: 4 AddRelu), the folded run matches the unfused one, a
// hook replacing a conv weight is honoured (the fold is redone: it is keyed by the tensor and its version), and under autograd
// the original nodes run so gradients reach the real weights.
TEST(Fusion, ConvBatchNormFoldsOnTheResNet) {
  auto [g, inputs] = load_fixture("fmnist-resnet", 16);
  auto groups = find_fusions(g);
  int with_relu = 0;
  std::map<std::string, int> count;
  for (const auto& grp : groups) {
    count[fusion_kind_name(grp.kind)]++;
    with_relu += grp.kind == FusionKind::kConvBn && grp.nodes.size() == 3;
  }
  EXPECT_EQ(count["ConvBn"], 11);
  EXPECT_EQ(count["AddRelu"], 4);  // the four residual joins
  EXPECT_EQ(groups.size(), 15u);
  EXPECT_EQ(with_relu, 5);  // stem + the first conv of each block
  auto fused = make_executor(g, true), plain = make_executor(g, false);
  at::Tensor a = fused->run(inputs).at(0), b = plain->run(inputs).at(0);
  EXPECT_EQ(fused->active_fusion_groups(), 15);
  EXPECT_LE(rel_err(a, b), 1e-5);
  for (Executor* ex : {fused.get(), plain.get()})
    ex->add_hook("layers.0.conv1.weight", [](const std::string&, at::Tensor& t) { t = t * -0.5; });
  at::Tensor a2 = fused->run(inputs).at(0), b2 = plain->run(inputs).at(0);
  EXPECT_GT((b2 - b).abs().max().item<double>(), 1e-2);  // the replacement matters
  EXPECT_LE(rel_err(a2, b2), 1e-5);
  fused->clear_hooks();
  EXPECT_LE(rel_err(fused->run(inputs).at(0), b), 1e-5);  // and the original weights come back
  // Autograd: each call falls back to the original nodes, so the weights get their gradients.
  Graph gg = g;
  gg.initializers.at("layers.0.conv1.weight") = gg.initializers.at("layers.0.conv1.weight").clone().requires_grad_(true);
  auto grad_ex = make_executor(gg, true);
  grad_ex->set_grad_enabled(true);
  at::Tensor y = grad_ex->run(inputs).at(0);
  EXPECT_LE(rel_err(y.detach(), b), 1e-5);
  y.sum().backward();
  EXPECT_TRUE(gg.initializers.at("layers.0.conv1.weight").grad().defined());
}


// Gather(table, idx) -> ReduceSum(axis 1) on the embedding fixture becomes one embedding_bag
// (sum): same logits as the unfused pair; observing the [N, 784, D] lookup falls back to it; an
// index the fused kernel does not cover (negative: Gather wraps it) runs the original nodes.
TEST(Fusion, EmbeddingLookupAndSumFuse) {
  auto [g, inputs] = load_fixture("fmnist-embedbag", 16);
  auto groups = find_fusions(g);
  ASSERT_EQ(groups.size(), 2u);  // the lookup and sum, and the hidden Gemm -> Relu (GemmAct)
  EXPECT_EQ(groups[0].kind, FusionKind::kEmbedSum);
  EXPECT_EQ(groups[1].kind, FusionKind::kGemmAct);
  auto fused = make_executor(g, true), plain = make_executor(g, false);
  at::Tensor a = fused->run(inputs).at(0), b = plain->run(inputs).at(0);
  EXPECT_EQ(fused->active_fusion_groups(), 2);
  EXPECT_LE(rel_err(a, b), 1e-5);
  int calls = 0;
  fused->add_hook("/embed/Gather_output_0", [&](const std::string&, at::Tensor& t) {
    EXPECT_EQ(t.dim(), 3);
    ++calls;
  });
  EXPECT_LE(rel_err(fused->run(inputs).at(0), b), 1e-5);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(fused->active_fusion_groups(), 1);  // the GemmAct only
  fused->clear_hooks();
  // Negative indices: Gather counts them from the end; both executors must agree.
  for (Executor* ex : {fused.get(), plain.get()})
    ex->add_hook("/Add_output_0", [](const std::string&, at::Tensor& t) { t = t - t.max() - 1; });
  at::Tensor an = fused->run(inputs).at(0), bn = plain->run(inputs).at(0);
  EXPECT_EQ(fused->active_fusion_groups(), 2);
  EXPECT_LE(rel_err(an, bn), 1e-5);
}

}  // namespace
}  // namespace mixq::test
