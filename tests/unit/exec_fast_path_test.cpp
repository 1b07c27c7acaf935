// The executor's inference fast paths (issue 17 item 4) against the plain path they replace:
// channels-last Conv (exec/conv_precision.h) and the Conv + activation / hard-swish / SiLU fusions
// (exec/fusion.h), on odd sizes with fixed seeds, in inference and in grad mode.
#include <ATen/ATen.h>

#include <cstdlib>
#include <map>
#include <optional>

#include "data/dataset.h"
#include "exec/dnnl_conv_cache.h"
#include "exec/executor.h"
#include "exec/fusion.h"
#include "graph_util.h"
#include "onnx/import.h"
#include "runtime/onednn.h"
#include "test_util.h"

namespace mixq::test {
namespace {

// Sets environment variables for the executor's constructor (which reads them) and restores them.
class EnvScope {
 public:
  explicit EnvScope(const std::map<std::string, std::string>& vars) {
    for (const auto& [k, v] : vars) {
      const char* old = std::getenv(k.c_str());
      saved_.push_back({k, old ? std::optional<std::string>(old) : std::nullopt});
      if (v.empty()) unsetenv(k.c_str()); else setenv(k.c_str(), v.c_str(), 1);
    }
  }
  ~EnvScope() {
    for (const auto& [k, v] : saved_) {
      if (v) setenv(k.c_str(), v->c_str(), 1); else unsetenv(k.c_str());
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// fast: every fast path on; otherwise the executor as it was before them with no fusion at all.
std::unique_ptr<Executor> make_executor(Graph g, bool fast) {
  EnvScope env(fast ? std::map<std::string, std::string>{{"MIXQ_NO_FUSION", ""}, {"MIXQ_EXEC_LEGACY", ""},
                                                          {"MIXQ_NO_CHANNELS_LAST", ""}}
                    : std::map<std::string, std::string>{{"MIXQ_NO_FUSION", "1"}, {"MIXQ_EXEC_LEGACY", "1"}});
  return std::make_unique<Executor>(std::move(g));
}

double rel_err(const at::Tensor& got, const at::Tensor& want) {
  return (got - want).abs().max().item<double>() / std::max(1.0, want.abs().max().item<double>());
}

Attribute ints(std::vector<int64_t> v) { return ints_attr(std::move(v)); }

// x [N, 5, H, W] -> conv_a (3x3, 6 out, stride 2, asymmetric pads) -> hard-swish (HardSigmoid + Mul)
//   -> conv_dw (depthwise 3x3, dilation 2, bias) -> Clip(0, 6) -> conv_pw (1x1, 7 out, no bias)
//   -> Relu -> conv_s (3x3, group 1) -> SiLU (Sigmoid + Mul) -> GlobalAveragePool -> y
// plus a standalone hard-swish on the graph input (no Conv before it) -> z.
Graph act_graph() {
  at::manual_seed(7);
  Graph g = new_graph("conv_act.onnx");
  g.inputs = {float_value("x", {-1, 5, -1, -1}, {"N", "", "H", "W"})};
  g.outputs = {float_value("y"), float_value("z")};
  g.initializers["Wa"] = at::randn({6, 5, 3, 3}) * 0.3;
  g.initializers["Ba"] = at::randn({6});
  g.initializers["Wdw"] = at::randn({6, 1, 3, 3}) * 0.5;
  g.initializers["Bdw"] = at::randn({6});
  g.initializers["Wpw"] = at::randn({7, 6, 1, 1}) * 0.4;
  g.initializers["Ws"] = at::randn({7, 7, 3, 3}) * 0.2;
  g.initializers["Bs"] = at::randn({7});
  g.initializers["lo"] = at::zeros({}, at::kFloat);
  g.initializers["hi"] = at::full({}, 6.0f);
  std::map<std::string, Attribute> hsig = {{"alpha", float_attr(1.0f / 6.0f)}, {"beta", float_attr(0.5f)}};
  g.nodes = {
      make_node("conv_a", "Conv", {"x", "Wa", "Ba"}, {"a"},
                {{"strides", ints({2, 2})}, {"pads", ints({0, 1, 2, 1})}, {"kernel_shape", ints({3, 3})}}),
      make_node("hs_a", "HardSigmoid", {"a"}, {"a_g"}, hsig),
      make_node("mul_a", "Mul", {"a_g", "a"}, {"a_act"}),
      make_node("conv_dw", "Conv", {"a_act", "Wdw", "Bdw"}, {"d"},
                {{"group", int_attr(6)}, {"dilations", ints({2, 2})}, {"pads", ints({2, 2, 2, 2})}}),
      make_node("clip", "Clip", {"d", "lo", "hi"}, {"d_act"}),
      make_node("conv_pw", "Conv", {"d_act", "Wpw"}, {"p"}),
      make_node("relu", "Relu", {"p"}, {"p_act"}),
      make_node("conv_s", "Conv", {"p_act", "Ws", "Bs"}, {"s"}, {{"pads", ints({1, 1, 1, 1})}}),
      make_node("sig", "Sigmoid", {"s"}, {"s_g"}),
      make_node("mul_s", "Mul", {"s", "s_g"}, {"s_act"}),
      make_node("gap", "GlobalAveragePool", {"s_act"}, {"y"}),
      make_node("hs_x", "HardSigmoid", {"x"}, {"x_g"}, hsig),
      make_node("mul_x", "Mul", {"x", "x_g"}, {"z"}),
  };
  return g;
}

TEST(ExecFastPath, ConvActivationChainsAreFound) {
  auto groups = find_fusions(act_graph());
  std::map<std::string, int> count;
  for (const auto& grp : groups) count[fusion_kind_name(grp.kind)]++;
  EXPECT_EQ(count["ConvAct"], 4);    // hard-swish, Clip, Relu, SiLU after a Conv
  EXPECT_EQ(count["HardSwish"], 1);  // on the graph input
  EXPECT_EQ(groups.size(), 5u);
  EnvScope legacy(std::map<std::string, std::string>{{"MIXQ_EXEC_LEGACY", "1"}});
  EXPECT_EQ(find_fusions(act_graph()).size(), 0u);  // before: no Conv + activation fusion
}

TEST(ExecFastPath, FusedChannelsLastMatchesPlainOnOddSizes) {
  auto fast = make_executor(act_graph(), true), plain = make_executor(act_graph(), false);
  EXPECT_EQ(plain->fusion_groups(), 0u);
  at::manual_seed(3);
  for (auto shape : {std::vector<int64_t>{3, 5, 13, 11}, {1, 5, 9, 17}, {2, 5, 6, 5}}) {
    at::Tensor x = at::randn(shape) * 2;
    auto a = fast->run({x}), b = plain->run({x});
    EXPECT_EQ(fast->active_fusion_groups(), 5);
    ASSERT_EQ(a[0].sizes(), b[0].sizes());
    EXPECT_LE(rel_err(a[0], b[0]), 1e-5);
    EXPECT_LE(rel_err(a[1], b[1]), 1e-5);
    // The subgraph path (original nodes, channels-last convs) agrees too.
    auto sub = fast->run({{"x", x}}, {"s_act"}).at("s_act");
    auto sub_plain = plain->run({{"x", x}}, {"s_act"}).at("s_act");
    EXPECT_TRUE(sub.is_contiguous(at::MemoryFormat::ChannelsLast));
    EXPECT_TRUE(sub_plain.is_contiguous());
    EXPECT_LE(rel_err(sub, sub_plain), 1e-5);
  }
}

TEST(ExecFastPath, HookInsideAChainRunsItsOriginalNodes) {
  auto fast = make_executor(act_graph(), true), plain = make_executor(act_graph(), false);
  at::manual_seed(4);
  at::Tensor x = at::randn({2, 5, 12, 10});
  int calls = 0;
  for (Executor* ex : {fast.get(), plain.get()})
    ex->add_hook("a_g", [&](const std::string&, at::Tensor& t) {
      ++calls;
      t = t * 0.5;
    });
  auto a = fast->run({x}), b = plain->run({x});
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(fast->active_fusion_groups(), 4);  // the first ConvAct falls back, the others stay
  EXPECT_LE(rel_err(a[0], b[0]), 1e-5);
}

// Grad mode: the Conv + activation groups run their original nodes (autograd records them), the
// standalone hard-swish runs at::hardswish with its own backward; gradients match the plain path.
TEST(ExecFastPath, GradModeMatchesPlainAndReachesWeights) {
  at::manual_seed(5);
  at::Tensor x = at::randn({3, 5, 11, 9});
  std::map<std::string, at::Tensor> grads[2];
  at::Tensor outs[2];
  for (int fast = 0; fast < 2; ++fast) {
    Graph g = act_graph();
    for (const char* w : {"Wa", "Wdw", "Ws"}) g.initializers.at(w) = g.initializers.at(w).clone().requires_grad_(true);
    at::Tensor xg = x.clone().requires_grad_(true);
    auto ex = make_executor(g, fast == 1);
    ex->set_grad_enabled(true);
    auto out = ex->run({xg});
    (out[0].pow(2).sum() + out[1].sum()).backward();
    outs[fast] = out[0].detach();
    for (const char* w : {"Wa", "Wdw", "Ws"}) {
      ASSERT_TRUE(g.initializers.at(w).grad().defined()) << w;
      grads[fast][w] = g.initializers.at(w).grad();
    }
    grads[fast]["x"] = xg.grad();
  }
  EXPECT_LE(rel_err(outs[1], outs[0]), 1e-5);
  for (const auto& [k, v] : grads[0]) EXPECT_LE(rel_err(grads[1][k], v), 1e-4) << k;
}

// A weight replaced by a hook each run (fake quantization) reaches the channels-last Conv: its NHWC
// weight cache is keyed by the tensor, not the node.
TEST(ExecFastPath, ChannelsLastConvSeesReplacedWeights) {
  auto fast = make_executor(act_graph(), true), plain = make_executor(act_graph(), false);
  at::manual_seed(6);
  at::Tensor x = at::randn({2, 5, 10, 10});
  at::Tensor base = plain->run({x})[0];
  float scale = 1.0f;
  for (Executor* ex : {fast.get(), plain.get()})
    ex->add_hook("Wdw", [&](const std::string&, at::Tensor& t) { t = t * scale; });
  for (float s : {0.5f, -1.0f}) {
    scale = s;
    at::Tensor a = fast->run({x})[0], b = plain->run({x})[0];
    EXPECT_GT((b - base).abs().max().item<double>(), 1e-3);
    EXPECT_LE(rel_err(a, b), 1e-5);
  }
}

// x [N, 8, H, W] -> pw (1x1, stride 2, asymmetric pads, bias) -> dw (depthwise 3x3, pads 0/1/2/1)
//   -> Relu -> grp (3x3, group 2, no bias) -> Clip(-1, 2) -> y: the layers that run on oneDNN
// directly in inference (exec/dnnl_conv_cache.h), with the fused Relu / Clip post-ops.
Graph dnnl_graph() {
  at::manual_seed(11);
  Graph g = new_graph("dnnl_conv.onnx");
  g.inputs = {float_value("x", {-1, 8, -1, -1}, {"N", "", "H", "W"})};
  g.outputs = {float_value("y")};
  g.initializers["Wp"] = at::randn({6, 8, 1, 1}) * 0.4;
  g.initializers["Bp"] = at::randn({6});
  g.initializers["Wd"] = at::randn({6, 1, 3, 3}) * 0.5;
  g.initializers["Bd"] = at::randn({6});
  g.initializers["Wg"] = at::randn({4, 3, 3, 3}) * 0.3;
  g.initializers["lo"] = at::full({}, -1.0f);
  g.initializers["hi"] = at::full({}, 2.0f);
  g.nodes = {
      make_node("pw", "Conv", {"x", "Wp", "Bp"}, {"p"}, {{"strides", ints({2, 2})}, {"pads", ints({0, 1, 1, 0})}}),
      make_node("dw", "Conv", {"p", "Wd", "Bd"}, {"d"}, {{"group", int_attr(6)}, {"pads", ints({0, 1, 2, 1})}}),
      make_node("relu", "Relu", {"d"}, {"d_act"}),
      make_node("grp", "Conv", {"d_act", "Wg"}, {"q"}, {{"group", int_attr(2)}, {"pads", ints({1, 1, 1, 1})}}),
      make_node("clip", "Clip", {"q", "lo", "hi"}, {"y"}),
  };
  return g;
}

// oneDNN directly vs libtorch's at::convolution (MIXQ_NO_DNNL_CONV=1) vs the plain executor, on odd
// sizes; then a weight edited in place (as reconstruction does between runs) is seen.
TEST(ExecFastPath, OneDnnConvMatchesLibtorchAndSeesEditedWeights) {
  Graph g = dnnl_graph();
  auto fast = make_executor(g, true), plain = make_executor(g, false);
  std::unique_ptr<Executor> torch_conv;
  {
    EnvScope off(std::map<std::string, std::string>{{"MIXQ_NO_DNNL_CONV", "1"}});
    torch_conv = make_executor(g, true);
  }
  at::manual_seed(12);
  for (auto shape : {std::vector<int64_t>{3, 8, 13, 11}, {1, 8, 7, 16}, {2, 8, 5, 5}}) {
    at::Tensor x = at::randn(shape);
    const int64_t before = DnnlConvCache::total_runs();
    at::Tensor a = fast->run({x})[0];
    EXPECT_EQ(DnnlConvCache::total_runs() - before, 3);  // pw, dw + Relu, grp + Clip
    at::Tensor b = plain->run({x})[0], c = torch_conv->run({x})[0];
    EXPECT_EQ(DnnlConvCache::total_runs() - before, 3);  // neither of the others took it
    ASSERT_EQ(a.sizes(), b.sizes());
    EXPECT_LE(rel_err(a, b), 1e-5);
    EXPECT_LE(rel_err(c, b), 1e-5);
    EXPECT_GT((b - b.clamp(-0.99, 1.99)).abs().max().item<double>(), 0) << "the Clip must bite";
  }
  at::Tensor x = at::randn({2, 8, 9, 9});
  at::Tensor y0 = fast->run({x})[0];
  {
    at::NoGradGuard ng;
    g.initializers.at("Wd").mul_(-0.5);  // the executors share the tensor: an in-place edit
  }
  at::Tensor want = plain->run({x})[0];
  for (int run = 0; run < 2; ++run) {  // oneDNN's form made anew, then reused
    const int64_t before = DnnlConvCache::total_runs();
    at::Tensor y1 = fast->run({x})[0];
    EXPECT_EQ(DnnlConvCache::total_runs() - before, 3);
    EXPECT_GT((y1 - y0).abs().max().item<double>(), 1e-3);
    EXPECT_LE(rel_err(y1, want), 1e-5);
  }
}

// The fixtures: BN-folded Conv + Clip (ReLU6) on MobileNetV2 fuse as ConvBn with the Clip; logits
// and top-1 match the plain path on real images.
// oneDNN's inner product keeps only its packed weights once the first format is made; row
// counts that ask for another format reorder from the packed one. Every count, in any order,
// matches the plain product.
TEST(ExecFastPath, OneDnnLinearEveryRowCountFromThePackedWeights) {
  if (!rt::DnnlConv::available()) GTEST_SKIP() << "no oneDNN engine";
  at::manual_seed(3);
  for (bool k_major : {false, true}) {
    const int64_t n = 37, k = 70;
    at::Tensor w = at::randn({n, k});
    at::Tensor b = at::randn({n});
    at::Tensor stored = k_major ? w.t().contiguous() : w.contiguous();
    rt::DnnlLinear lin(stored.data_ptr<float>(), n, k, k_major, b.data_ptr<float>());
    for (int64_t m : {64, 1, 5, 256, 1, 64}) {
      at::Tensor x = at::randn({m, k});
      at::Tensor y = at::empty({m, n});
      lin.run(x.data_ptr<float>(), m, y.data_ptr<float>(), 1);
      at::Tensor want = at::addmm(b, x, w.t());
      EXPECT_TRUE(at::allclose(y, want, 1e-4, 1e-4)) << "m=" << m << " k_major=" << k_major;
    }
  }
}

TEST(ExecFastPath, FixturesMatchThePlainPath) {
  for (const char* name : {"fmnist-mobilenetv2", "fmnist-resnet", "fmnist-vit"}) {
    Graph g = load_onnx(fixture(name));
    auto inputs = open_dataset("fmnist:test:24", g.inputs, preprocess_from_metadata(g))->get(0, 24).inputs;
    auto fast = make_executor(g, true), plain = make_executor(g, false);
    at::Tensor a = fast->run(inputs)[0], b = plain->run(inputs)[0];
    EXPECT_LE(rel_err(a, b), 1e-5) << name;
    EXPECT_TRUE(at::equal(a.argmax(1), b.argmax(1))) << name;
    if (std::string(name) == "fmnist-mobilenetv2") {
      int clip = 0;
      for (const auto& grp : find_fusions(g))
        clip += grp.kind == FusionKind::kConvBn && g.nodes[grp.nodes.back()].op_type == "Clip";
      EXPECT_EQ(clip, 14);
    }
  }
}

}  // namespace
}  // namespace mixq::test
