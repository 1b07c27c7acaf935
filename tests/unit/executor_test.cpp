// Executor: op-by-op execution, hooks, subgraph runs, static caching, grad mode, input checks.
#include <ATen/ATen.h>

#include "exec/executor.h"
#include "graph_util.h"
#include "test_util.h"

namespace mixq {
namespace {

// x[N,4] -> MatMul(W[4,3]) -> y -> Add(b[3]) -> z -> Relu -> out
Graph tiny_mlp() {
  at::manual_seed(0);
  Graph g = new_graph("tiny.onnx");
  g.inputs = {float_value("x", {-1, 4}, {"N", ""})};
  g.outputs = {float_value("out")};
  g.initializers["W"] = at::randn({4, 3});
  g.initializers["b"] = at::randn({3});
  g.nodes = {make_node("mm", "MatMul", {"x", "W"}, {"y"}), make_node("add", "Add", {"y", "b"}, {"z"}),
             make_node("relu", "Relu", {"z"}, {"out"})};
  return g;
}

at::Tensor expected(const Graph& g, const at::Tensor& x) {
  return at::relu(x.mm(g.initializers.at("W")) + g.initializers.at("b"));
}

TEST(Executor, MatchesLibtorchWithDynamicBatch) {
  Graph g = tiny_mlp();
  Executor ex(g);
  for (int64_t n : {1, 7, 64}) {
    at::Tensor x = at::randn({n, 4});
    auto out = ex.run({x});
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(at::allclose(out[0], expected(g, x)));
  }
}

TEST(Executor, RunsInInferenceModeByDefault) {
  Executor ex(tiny_mlp());
  EXPECT_TRUE(ex.run({at::randn({2, 4})})[0].is_inference());
}

TEST(Executor, HooksObserveAndReplace) {
  Graph g = tiny_mlp();
  Executor ex(g);
  at::Tensor seen;
  int observe = ex.add_hook("y", [&](const std::string& name, at::Tensor& t) {
    EXPECT_EQ(name, "y");
    seen = t.clone();
  });
  at::Tensor x = at::randn({5, 4});
  ex.run({x});
  EXPECT_TRUE(at::allclose(seen, x.mm(g.initializers.at("W"))));
  // Replacing an initializer through a hook: W := 0 gives relu(b) for every row.
  int zero_w = ex.add_hook("W", [](const std::string&, at::Tensor& t) { t = at::zeros_like(t); });
  auto out = ex.run({x})[0];
  EXPECT_TRUE(at::allclose(out, at::relu(g.initializers.at("b")).expand({5, 3})));
  // Removing the hook restores the original weight (the static cache is invalidated).
  ex.remove_hook(zero_w);
  EXPECT_TRUE(at::allclose(ex.run({x})[0], expected(g, x)));
  ex.remove_hook(observe);
  seen = at::Tensor();
  ex.run({x});
  EXPECT_FALSE(seen.defined());
}

TEST(Executor, RunsASubgraphFromFedValues) {
  Graph g = tiny_mlp();
  Executor ex(g);
  int matmuls = 0;
  ex.add_hook("y", [&](const std::string&, at::Tensor&) { ++matmuls; });
  at::Tensor y = at::randn({3, 3});
  auto res = ex.run({{"y", y}}, {"out", "z"});
  EXPECT_EQ(matmuls, 1);  // the fed value passes through its hook, MatMul does not run
  EXPECT_TRUE(at::allclose(res.at("z"), y + g.initializers.at("b")));
  EXPECT_TRUE(at::allclose(res.at("out"), at::relu(y + g.initializers.at("b"))));
  // Fetching something that needs an unfed graph input is an error naming the input.
  try {
    ex.run(std::map<std::string, at::Tensor>{}, {"out"});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'x'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ex.run({{"y", y}}, {"no_such_value"}), Error);
}

TEST(Executor, GradModeRecordsAutograd) {
  Graph g = tiny_mlp();
  Executor ex(g);
  ex.set_grad_enabled(true);
  at::Tensor w = g.initializers.at("W").clone().requires_grad_(true);
  ex.add_hook("W", [&](const std::string&, at::Tensor& t) { t = w; });
  at::Tensor x = at::randn({6, 4});
  at::Tensor out = ex.run({x})[0];
  ASSERT_TRUE(out.requires_grad());
  out.sum().backward();
  // d/dW sum(relu(xW + b)) = x^T * 1[xW + b > 0]
  at::Tensor mask = (x.mm(g.initializers.at("W")) + g.initializers.at("b")).gt(0).to(at::kFloat);
  EXPECT_TRUE(at::allclose(w.grad(), x.t().mm(mask)));
}

TEST(Executor, RejectsWrongInputs) {
  Executor ex(tiny_mlp());
  EXPECT_THROW(ex.run({at::randn({2, 5})}), Error);              // wrong static dim
  EXPECT_THROW(ex.run({at::randn({2, 4, 1})}), Error);           // wrong rank
  EXPECT_THROW(ex.run({at::ones({2, 4}, at::kLong)}), Error);    // wrong dtype
  EXPECT_THROW(ex.run({}), Error);                               // missing input
  try {
    ex.run({at::randn({2, 4, 1})});
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidData);
    EXPECT_NE(std::string(e.what()).find("float[N,4]"), std::string::npos) << e.what();
  }
}

TEST(Executor, UnsupportedOpNamesNodeOpAndOpset) {
  Graph g = tiny_mlp();
  g.nodes[1].op_type = "FancyAdd";
  try {
    Executor ex(g);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_NE(msg.find("node 'add' (FancyAdd, opset 13)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("not supported"), std::string::npos) << msg;
  }
}

TEST(Executor, RuntimeShapeErrorNamesNodeAndShapes) {
  Graph g = tiny_mlp();
  g.initializers["b"] = at::randn({5});  // cannot broadcast against [N,3]
  Executor ex(g);
  try {
    ex.run({at::randn({2, 4})});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::kRuntime);
    EXPECT_NE(msg.find("node 'add' (Add, opset 13)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("b: float[5]"), std::string::npos) << msg;
  }
}

TEST(Executor, BadAttributeTypeFailsAtCompileTime) {
  Graph g = tiny_mlp();
  g.nodes[2].op_type = "LeakyRelu";
  Attribute a;
  a.type = AttrType::kString;
  a.s = "0.1";
  g.nodes[2].attrs["alpha"] = a;
  try {
    Executor ex(g);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("alpha"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("relu"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mixq
