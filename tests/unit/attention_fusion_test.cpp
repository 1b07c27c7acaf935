// Fused scaled-dot-product attention in the executor (exec/fusion.h, kind Attention) and in the
// packed runtime (runtime/fuse_chains.h, fuse_attention) on hand-built chains: Mul and Div scaling,
// the fused result within float rounding of the chain, and shapes the kernel does not cover
// (broadcast leading dims in the executor, rank 5 in the runtime) falling back to the original ops.
#include <ATen/ATen.h>

#include <cmath>

#include "exec/executor.h"
#include "exec/fusion.h"
#include "exec_util.h"
#include "graph_util.h"
#include "pack/mxq_format.h"
#include "rt_test_util.h"
#include "runtime/runtime.h"
#include "test_util.h"

namespace mixq::test {
namespace {

double rel_err(const at::Tensor& got, const at::Tensor& want) {
  return (got - want).abs().max().item<double>() / std::max(1.0, want.abs().max().item<double>());
}

// q, k, v -> MatMul -> Mul|Div(c) -> Softmax(-1) -> MatMul -> out.
Graph attention_graph(bool divide) {
  Graph g = new_graph("attention.onnx");
  g.inputs = {float_value("q"), float_value("k"), float_value("v")};
  g.outputs = {float_value("out")};
  g.initializers["c"] = at::full({}, divide ? 2.5f : 0.4f);
  Attribute axis;
  axis.type = AttrType::kInt;
  axis.i = -1;
  g.nodes = {make_node("mm1", "MatMul", {"q", "k"}, {"s"}),
             make_node("scale", divide ? "Div" : "Mul", divide ? std::vector<std::string>{"s", "c"}
                                                               : std::vector<std::string>{"c", "s"}, {"t"}),
             make_node("sm", "Softmax", {"t"}, {"p"}, {{"axis", axis}}),
             make_node("mm2", "MatMul", {"p", "v"}, {"out"})};
  return g;
}

TEST(AttentionFusion, ExecutorMatchesTheChainAndFallsBackOnBroadcasts) {
  at::manual_seed(3);
  for (bool divide : {false, true}) {
    Graph g = attention_graph(divide);
    auto groups = find_fusions(g);
    ASSERT_EQ(groups.size(), 1u);
    EXPECT_EQ(groups[0].kind, FusionKind::kAttention);
    auto fused = make_executor(g, true);
    auto plain = make_executor(g, false);
    const std::vector<at::Tensor> in = {at::randn({2, 3, 5, 4}) * 3, at::randn({2, 3, 4, 7}), at::randn({2, 3, 7, 6})};
    at::Tensor a = fused->run(in).at(0), b = plain->run(in).at(0);
    EXPECT_EQ(fused->active_fusion_groups(), 1);
    ASSERT_EQ(a.sizes(), b.sizes());
    EXPECT_LE(rel_err(a, b), 1e-5) << divide;
    // A value tensor shared by every batch entry (broadcast): the chain runs, same result.
    const std::vector<at::Tensor> bc = {in[0], in[1], at::randn({1, 3, 7, 6})};
    a = fused->run(bc).at(0);
    EXPECT_TRUE(at::equal(a, plain->run(bc).at(0)));
  }
}

pack::PackedModel attention_packed(int rank) {
  pack::PackedModel m;
  // (-1 dims: any size; inputs of rank 3, 4 and 5 are run below, so three models)
  for (const char* n : {"q", "k", "v"}) m.inputs.push_back({n, pack::ElemType::kFloat32, std::vector<int64_t>(rank, -1)});
  m.outputs.push_back({"out", pack::ElemType::kFloat32, {}});
  pack::Tensor c;
  c.name = "c";
  c.f = {0.35f};
  m.tensors.push_back(c);
  auto node = [](const char* name, const char* op, std::vector<std::string> in, const char* out) {
    pack::Node n;
    n.name = name;
    n.op = op;
    n.inputs = std::move(in);
    n.outputs = {out};
    return n;
  };
  m.nodes = {node("mm1", "MatMul", {"q", "k"}, "s"), node("scale", "Mul", {"s", "c"}, "t"),
             node("sm", "Softmax", {"t"}, "p"), node("mm2", "MatMul", {"p", "v"}, "out")};
  m.nodes[2].attrs["axis"].i = -1;
  return m;
}

// The layout transformer exports write: Q, K, V as [batch, tokens, heads, dim] projections,
// transposed to [b, h, t, d] (K to [b, h, d, t]) before the chain, the output transposed back.
pack::PackedModel attention_packed_transposed() {
  pack::PackedModel m = attention_packed(4);
  auto transpose = [](const char* name, const char* in, const char* out, std::vector<int64_t> perm) {
    pack::Node n;
    n.name = name;
    n.op = "Transpose";
    n.inputs = {in};
    n.outputs = {out};
    n.attrs["perm"].type = pack::Attr::kInts;
    n.attrs["perm"].ints = std::move(perm);
    return n;
  };
  m.nodes[0].inputs = {"tq", "tk"};
  m.nodes[3].inputs = {"p", "tv"};
  m.nodes[3].outputs = {"o"};
  m.nodes.insert(m.nodes.begin(), {transpose("trq", "q", "tq", {0, 2, 1, 3}), transpose("trk", "k", "tk", {0, 2, 3, 1}),
                                   transpose("trv", "v", "tv", {0, 2, 1, 3})});
  m.nodes.push_back(transpose("tro", "o", "out", {0, 2, 1, 3}));
  return m;
}

rt::Tensor random_rt(std::vector<int64_t> shape, float spread) { return to_rt(at::randn(shape) * spread); }

TEST(AttentionFusion, RuntimeMatchesTheChainAndFallsBackOnOtherRanks) {
  at::manual_seed(4);
  rt::ModelOptions on{kernels::default_isa(), 2}, off = on;
  on.fuse_attention = true;
  off.fuse_attention = false;
  auto close = [](const std::vector<float>& a, const std::vector<float>& b) {
    EXPECT_EQ(a.size(), b.size());
    double worst = 0;
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) worst = std::max(worst, double(std::fabs(a[i] - b[i])));
    return worst;
  };
  {  // rank 4, and rank 3 with a broadcast value tensor: the kernel
    rt::Model fused(attention_packed(4), on), plain(attention_packed(4), off);
    EXPECT_EQ(fused.forms().attentions, 1);
    EXPECT_EQ(plain.forms().attentions, 0);
    const std::vector<rt::Tensor> x = {random_rt({2, 4, 9, 8}, 3), random_rt({2, 4, 8, 11}, 1),
                                       random_rt({2, 4, 11, 5}, 1)};
    EXPECT_LE(close(fused.run(x).at(0).f, plain.run(x).at(0).f), 1e-5);
  }
  {
    rt::Model fused(attention_packed(3), on), plain(attention_packed(3), off);
    const std::vector<rt::Tensor> y = {random_rt({3, 6, 4}, 1), random_rt({3, 4, 6}, 1), random_rt({1, 6, 2}, 1)};
    const rt::Tensor fy = fused.run(y).at(0);
    EXPECT_EQ(fy.shape, (std::vector<int64_t>{3, 6, 2}));
    EXPECT_LE(close(fy.f, plain.run(y).at(0).f), 1e-5);
  }
  {  // the Transposes around the chain folded into the kernel's strides
    rt::Model fused(attention_packed_transposed(), on), plain(attention_packed_transposed(), off);
    EXPECT_EQ(fused.forms().attentions, 1);
    const std::vector<rt::Tensor> x = {random_rt({2, 9, 4, 8}, 3), random_rt({2, 11, 4, 8}, 1),
                                       random_rt({2, 11, 4, 5}, 1)};
    const rt::Tensor fx = fused.run(x).at(0), px = plain.run(x).at(0);
    EXPECT_EQ(fx.shape, (std::vector<int64_t>{2, 9, 4, 5}));
    EXPECT_EQ(fx.shape, px.shape);
    EXPECT_LE(close(fx.f, px.f), 1e-5);
    // Rank 3 inputs to the rank-4 Transposes: the fused op runs the original ops (and their error).
    const std::vector<rt::Tensor> bad = {random_rt({9, 4, 8}, 1), random_rt({11, 4, 8}, 1), random_rt({11, 4, 5}, 1)};
    EXPECT_THROW(fused.run(bad), Error);
  }
  {  // rank 5: the original four ops inside the fused one, the same bits as unfused
    rt::Model fused(attention_packed(5), on), plain(attention_packed(5), off);
    const std::vector<rt::Tensor> x = {random_rt({2, 2, 2, 3, 4}, 1), random_rt({2, 2, 2, 4, 5}, 1),
                                       random_rt({2, 2, 2, 5, 3}, 1)};
    EXPECT_EQ(fused.run(x).at(0).f, plain.run(x).at(0).f);
  }
}

}  // namespace
}  // namespace mixq::test
