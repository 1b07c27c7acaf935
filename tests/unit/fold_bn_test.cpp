// BatchNormalization folding and Identity/Dropout removal: folded graphs compute what the
// unfolded ones do (executor against executor), and the patterns that must not fold stay.
#include "graph/fold_bn.h"

#include <ATen/ATen.h>

#include "exec/executor.h"
#include "graph_util.h"
#include "test_util.h"

namespace mixq {
namespace {

Graph base_graph(const std::vector<int64_t>& in_dims) {
  Graph g;
  g.name = "bn";
  g.source_path = "bn.onnx";
  g.opsets[""] = 13;
  g.inputs = {float_value("x", in_dims)};
  g.outputs = {float_value("out", {})};
  return g;
}

// BN(y) -> out with random statistics over `c` channels (var > 0, eps 1e-3).
void add_bn(Graph& g, const std::string& in, const std::string& out, int64_t c,
            const std::string& p = "bn") {
  g.initializers[p + ".gamma"] = at::randn({c});
  g.initializers[p + ".beta"] = at::randn({c});
  g.initializers[p + ".mean"] = at::randn({c});
  g.initializers[p + ".var"] = at::rand({c}) + 0.5;
  g.nodes.push_back(make_node(p, "BatchNormalization",
                              {in, p + ".gamma", p + ".beta", p + ".mean", p + ".var"}, {out},
                              {{"epsilon", float_attr(1e-3f)}}));
}

// Max |a - b| relative to max |b|.
double rel_err(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / std::max(1e-12, b.abs().max().item<double>());
}

void expect_same_outputs(const Graph& original, const Graph& folded, const at::Tensor& x) {
  Executor e0(original), e1(folded);
  auto y0 = e0.run({x}), y1 = e1.run({x});
  ASSERT_EQ(y0.size(), y1.size());
  for (size_t i = 0; i < y0.size(); ++i) {
    ASSERT_EQ(y0[i].sizes(), y1[i].sizes());
    EXPECT_LT(rel_err(y1[i], y0[i]), 1e-5) << "output " << i;
  }
}

int count_op(const Graph& g, const std::string& op) {
  int n = 0;
  for (const auto& node : g.nodes) n += node.op_type == op;
  return n;
}

Graph conv_bn(int64_t cin, int64_t cout, int64_t groups, bool bias) {
  Graph g = base_graph({-1, cin, 7, 6});
  g.initializers["conv.weight"] = at::randn({cout, cin / groups, 3, 3});
  std::vector<std::string> in = {"x", "conv.weight"};
  if (bias) {
    g.initializers["conv.bias"] = at::randn({cout});
    in.push_back("conv.bias");
  }
  g.nodes.push_back(make_node("conv", "Conv", in, {"y"},
                              {{"group", int_attr(groups)}, {"pads", ints_attr({1, 1, 1, 1})}}));
  add_bn(g, "y", "z", cout);
  g.nodes.push_back(make_node("relu", "Relu", {"z"}, {"out"}));
  return g;
}

TEST(FoldBatchNorm, ConvWithBias) {
  at::manual_seed(1);
  Graph g = conv_bn(3, 5, 1, true);
  Graph f = g;
  EXPECT_EQ(fold_batchnorm(f), 1);
  EXPECT_EQ(count_op(f, "BatchNormalization"), 0);
  ASSERT_EQ(f.nodes.size(), 2u);
  EXPECT_EQ(f.nodes[0].outputs[0], "z");           // the conv now produces the BN's output
  EXPECT_EQ(f.nodes[0].inputs[1], "conv.weight");  // unshared: replaced under its own name
  EXPECT_EQ(f.nodes[0].inputs[2], "conv.bias");
  for (const char* p : {"bn.gamma", "bn.beta", "bn.mean", "bn.var"})
    EXPECT_FALSE(f.is_initializer(p)) << p;
  EXPECT_EQ(f.initializers.at("conv.weight").scalar_type(), at::kFloat);
  // The original graph's tensors are untouched (the Graph copy shares them).
  EXPECT_FALSE(at::equal(f.initializers.at("conv.weight"), g.initializers.at("conv.weight")));
  expect_same_outputs(g, f, at::randn({2, 3, 7, 6}));
}

TEST(FoldBatchNorm, ConvWithoutBiasGetsOne) {
  at::manual_seed(2);
  Graph g = conv_bn(3, 4, 1, false);
  Graph f = g;
  EXPECT_EQ(fold_batchnorm(f), 1);
  ASSERT_EQ(f.nodes[0].inputs.size(), 3u);
  const std::string& b = f.nodes[0].inputs[2];
  ASSERT_TRUE(f.is_initializer(b));
  EXPECT_EQ(f.initializers.at(b).sizes(), at::IntArrayRef({4}));
  expect_same_outputs(g, f, at::randn({3, 3, 7, 6}));
}

TEST(FoldBatchNorm, GroupedAndDepthwiseConv) {
  at::manual_seed(3);
  for (auto [cin, cout, groups] :
       {std::tuple<int64_t, int64_t, int64_t>{4, 6, 2}, {4, 4, 4}, {6, 12, 3}}) {
    Graph g = conv_bn(cin, cout, groups, groups != 4);
    Graph f = g;
    EXPECT_EQ(fold_batchnorm(f), 1);
    expect_same_outputs(g, f, at::randn({2, cin, 7, 6}));
  }
}

TEST(FoldBatchNorm, ConvTranspose) {
  at::manual_seed(4);
  for (auto [cin, cout_g, groups, bias] :
       {std::tuple<int64_t, int64_t, int64_t, bool>{3, 5, 1, true},
        {4, 3, 2, false},
        {6, 2, 3, true}}) {
    const int64_t cout = cout_g * groups;
    Graph g = base_graph({-1, cin, 5, 4});
    g.initializers["deconv.weight"] = at::randn({cin, cout_g, 3, 2});
    std::vector<std::string> in = {"x", "deconv.weight"};
    if (bias) {
      g.initializers["deconv.bias"] = at::randn({cout});
      in.push_back("deconv.bias");
    }
    g.nodes.push_back(make_node("deconv", "ConvTranspose", in, {"y"},
                                {{"group", int_attr(groups)}, {"strides", ints_attr({2, 1})}}));
    add_bn(g, "y", "out", cout);  // the BN output is the graph output
    Graph f = g;
    EXPECT_EQ(fold_batchnorm(f), 1) << cin << " " << cout << " " << groups;
    ASSERT_EQ(f.nodes.size(), 1u);
    EXPECT_EQ(f.nodes[0].outputs[0], "out");
    expect_same_outputs(g, f, at::randn({2, cin, 5, 4}));
  }
}

TEST(FoldBatchNorm, GemmTransBAndBiasShapes) {
  at::manual_seed(5);
  for (bool trans_b : {false, true}) {
    for (int bias_kind : {0, 1, 2}) {  // none, [N], [1, N] with beta != 1
      Graph g = base_graph({3, 7});
      g.initializers["fc.weight"] = trans_b ? at::randn({5, 7}) : at::randn({7, 5});
      std::vector<std::string> in = {"x", "fc.weight"};
      if (bias_kind == 1) g.initializers["fc.bias"] = at::randn({5});
      if (bias_kind == 2) g.initializers["fc.bias"] = at::randn({1, 5});
      if (bias_kind) in.push_back("fc.bias");
      g.nodes.push_back(make_node("fc", "Gemm", in, {"y"},
                                  {{"transB", int_attr(trans_b)},
                                   {"alpha", float_attr(0.75f)},
                                   {"beta", float_attr(bias_kind == 2 ? 1.5f : 1.0f)}}));
      add_bn(g, "y", "out", 5);
      Graph f = g;
      EXPECT_EQ(fold_batchnorm(f), 1) << trans_b << " " << bias_kind;
      expect_same_outputs(g, f, at::randn({3, 7}));
    }
  }
}

TEST(FoldBatchNorm, SecondConsumerOfConvOutputPreventsFolding) {
  at::manual_seed(6);
  Graph g = conv_bn(3, 4, 1, true);
  g.nodes.push_back(make_node("add", "Add", {"out", "y"}, {"out2"}));  // y read twice
  g.outputs.push_back(float_value("out2", {}));
  Graph f = g;
  EXPECT_EQ(fold_batchnorm(f), 0);
  EXPECT_EQ(f.nodes.size(), g.nodes.size());
  EXPECT_TRUE(at::equal(f.initializers.at("conv.weight"), g.initializers.at("conv.weight")));

  // A graph output reading the conv output blocks it too.
  Graph h = conv_bn(3, 4, 1, true);
  h.outputs.push_back(float_value("y", {}));
  EXPECT_EQ(fold_batchnorm(h), 0);
}

TEST(FoldBatchNorm, UnfoldablePatternsStay) {
  at::manual_seed(7);
  // BN after a Relu (no layer), and BN with a non-constant mean.
  Graph g = base_graph({-1, 3, 4, 4});
  g.nodes.push_back(make_node("relu", "Relu", {"x"}, {"r"}));
  add_bn(g, "r", "out", 3);
  EXPECT_EQ(fold_batchnorm(g), 0);
  Graph h = conv_bn(3, 4, 1, true);
  h.initializers.erase("bn.mean");
  h.inputs.push_back(float_value("bn.mean", {4}));
  EXPECT_EQ(fold_batchnorm(h), 0);
  // Training-mode BN (opset 14+) stays.
  Graph t = conv_bn(3, 4, 1, true);
  t.opsets[""] = 15;
  t.nodes[1].attrs["training_mode"] = int_attr(1);
  EXPECT_EQ(fold_batchnorm(t), 0);
}

TEST(FoldBatchNorm, SharedWeightIsCopiedNotModified) {
  at::manual_seed(8);
  // Two convs read the same weight and bias; only the first is followed by a BN.
  Graph g = base_graph({-1, 3, 5, 5});
  g.initializers["w"] = at::randn({4, 3, 3, 3});
  g.initializers["b"] = at::randn({4});
  g.nodes.push_back(make_node("conv1", "Conv", {"x", "w", "b"}, {"y1"}));
  add_bn(g, "y1", "z1", 4);
  g.nodes.push_back(make_node("conv2", "Conv", {"x", "w", "b"}, {"y2"}));
  g.nodes.push_back(make_node("add", "Add", {"z1", "y2"}, {"out"}));
  Graph f = g;
  EXPECT_EQ(fold_batchnorm(f), 1);
  EXPECT_TRUE(at::equal(f.initializers.at("w"), g.initializers.at("w")));
  EXPECT_TRUE(at::equal(f.initializers.at("b"), g.initializers.at("b")));
  const Node& c1 = f.nodes[0];
  EXPECT_NE(c1.inputs[1], "w");
  EXPECT_NE(c1.inputs[2], "b");
  EXPECT_EQ(f.nodes[1].inputs[1], "w");
  expect_same_outputs(g, f, at::randn({2, 3, 5, 5}));
}

TEST(FoldBatchNorm, SharedBatchNormParametersAndChains) {
  at::manual_seed(9);
  // Two conv+BN pairs sharing one set of BN parameters: both fold, the parameters go.
  Graph g = base_graph({-1, 2, 5, 5});
  g.initializers["w1"] = at::randn({2, 2, 1, 1});
  g.initializers["w2"] = at::randn({2, 2, 3, 3});
  g.nodes.push_back(make_node("conv1", "Conv", {"x", "w1"}, {"y1"}));
  add_bn(g, "y1", "z1", 2);
  g.nodes.push_back(
      make_node("conv2", "Conv", {"z1", "w2"}, {"y2"}, {{"pads", ints_attr({1, 1, 1, 1})}}));
  g.nodes.push_back(make_node("bn2", "BatchNormalization",
                              {"y2", "bn.gamma", "bn.beta", "bn.mean", "bn.var"}, {"out"}));
  Graph f = g;
  EXPECT_EQ(fold_batchnorm(f), 2);
  EXPECT_EQ(f.nodes.size(), 2u);
  EXPECT_FALSE(f.is_initializer("bn.gamma"));
  expect_same_outputs(g, f, at::randn({2, 2, 5, 5}));
}

TEST(RemoveIdentityAndDropout, BypassesInferenceNoOps) {
  at::manual_seed(10);
  Graph g = base_graph({2, 3});
  g.nodes.push_back(make_node("id1", "Identity", {"x"}, {"a"}));
  g.nodes.push_back(make_node("drop", "Dropout", {"a"}, {"b", ""}));
  g.nodes.push_back(make_node("relu", "Relu", {"b"}, {"c"}));
  g.nodes.push_back(make_node("id2", "Identity", {"c"}, {"out"}));  // graph output: stays
  Graph f = g;
  EXPECT_EQ(remove_identity_and_dropout(f), 2);
  ASSERT_EQ(f.nodes.size(), 2u);
  EXPECT_EQ(f.nodes[0].op_type, "Relu");
  EXPECT_EQ(f.nodes[0].inputs[0], "x");
  expect_same_outputs(g, f, at::randn({2, 3}));

  // A used mask keeps the Dropout.
  Graph h = base_graph({2, 3});
  h.nodes.push_back(make_node("drop", "Dropout", {"x"}, {"a", "mask"}));
  h.nodes.push_back(make_node("cast", "Cast", {"mask"}, {"m"}, {{"to", int_attr(1)}}));
  h.nodes.push_back(make_node("add", "Add", {"a", "m"}, {"out"}));
  EXPECT_EQ(remove_identity_and_dropout(h), 0);
}

}  // namespace
}  // namespace mixq
