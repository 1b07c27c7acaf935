// Operators at opset 18 (Debian's ONNX test data stops at 17) and the recurrent ops beyond what
// ONNX's node tests cover: bidirectional/reverse, sequence_lens, layout 1 and autograd, checked
// against libtorch's own LSTM/GRU/RNN.
#include <ATen/ATen.h>

#include "exec/executor.h"
#include "graph_util.h"
#include "test_util.h"

namespace mixq {
namespace {

Graph graph18(const std::string& name) {
  Graph g = new_graph(name + ".onnx");
  g.opsets[""] = 18;
  return g;
}

at::Tensor ints(std::vector<int64_t> v) { return at::tensor(v, at::kLong); }

// One node with one float input "x" and the given initializers; returns its outputs for x.
std::vector<at::Tensor> run_one(const std::string& op, std::vector<std::string> inputs, size_t n_out,
                                std::map<std::string, Attribute> attrs,
                                std::map<std::string, at::Tensor> inits, const at::Tensor& x) {
  Graph g = graph18(op);
  g.inputs = {float_value("x")};
  std::vector<std::string> outs;
  for (size_t i = 0; i < n_out; ++i) {
    outs.push_back("y" + std::to_string(i));
    g.outputs.push_back(float_value(outs.back()));
  }
  g.initializers = std::move(inits);
  g.nodes = {make_node("n", op, std::move(inputs), outs, std::move(attrs))};
  Executor ex(g);
  return ex.run({x});
}

TEST(Opset18, ReduceTakesAxesAsInput) {
  at::Tensor x = at::randn({2, 3, 4});
  auto y = run_one("ReduceMean", {"x", "axes"}, 1, {{"keepdims", int_attr(0)}}, {{"axes", ints({1})}}, x);
  EXPECT_TRUE(at::allclose(y[0], x.mean(1)));
  y = run_one("ReduceMax", {"x", "axes"}, 1, {}, {{"axes", ints({0, -1})}}, x);
  EXPECT_TRUE(at::equal(y[0], x.amax({0, 2}, true)));
  y = run_one("ReduceL2", {"x", "axes"}, 1, {{"keepdims", int_attr(0)}}, {{"axes", ints({2})}}, x);
  EXPECT_TRUE(at::allclose(y[0], x.square().sum(2).sqrt()));
  // No axes: reduce everything, or nothing with noop_with_empty_axes.
  y = run_one("ReduceMin", {"x"}, 1, {{"keepdims", int_attr(0)}}, {}, x);
  EXPECT_TRUE(at::equal(y[0], x.min()));
  y = run_one("ReduceLogSumExp", {"x"}, 1, {{"noop_with_empty_axes", int_attr(1)}}, {}, x);
  EXPECT_TRUE(at::equal(y[0], x));
  // The opset-13 attribute form is an error at 18, naming the node.
  EXPECT_THROW(run_one("ReduceMean", {"x"}, 1, {{"axes", ints_attr({1})}}, {}, x), Error);
}

TEST(Opset18, SplitNumOutputs) {
  at::Tensor x = at::arange(14, at::kFloat).reshape({2, 7});
  auto y = run_one("Split", {"x"}, 3, {{"axis", int_attr(1)}, {"num_outputs", int_attr(3)}}, {}, x);
  ASSERT_EQ(y.size(), 3u);
  EXPECT_EQ(y[0].size(1), 3);
  EXPECT_EQ(y[1].size(1), 3);
  EXPECT_EQ(y[2].size(1), 1);  // the last part is the smaller one
  EXPECT_TRUE(at::equal(at::cat(y, 1), x));
  EXPECT_THROW(run_one("Split", {"x"}, 2, {{"num_outputs", int_attr(3)}}, {}, x), Error);
}

TEST(Opset18, PadAxes) {
  at::Tensor x = at::randn({2, 3, 4});
  auto y = run_one("Pad", {"x", "pads", "", "axes"}, 1, {}, {{"pads", ints({1, 2})}, {"axes", ints({-1})}}, x);
  EXPECT_TRUE(at::equal(y[0], at::constant_pad_nd(x, {1, 2}, 0)));
  y = run_one("Pad", {"x", "pads", "", "axes"}, 1, {{"mode", string_attr("edge")}},
              {{"pads", ints({0, 1, 1, 0})}, {"axes", ints({2, 0})}}, x);
  ASSERT_EQ(y[0].sizes(), at::IntArrayRef({3, 3, 5}));
  EXPECT_TRUE(at::equal(y[0].narrow(0, 1, 2).narrow(2, 0, 4), x));
}

TEST(Opset18, ResizeAxesAndAspectRatio) {
  at::Tensor x = at::randn({1, 2, 3, 5});
  auto y = run_one("Resize", {"x", "", "scales"}, 1, {{"axes", ints_attr({2, 3})}},
                   {{"scales", at::tensor({2.0f, 2.0f})}}, x);
  EXPECT_TRUE(at::equal(y[0], x.repeat_interleave(2, 2).repeat_interleave(2, 3)));
  // not_larger: one scale min(6/3, 6/5) = 1.2 for both axes -> 4 x 6 (round(3.6), 6).
  y = run_one("Resize", {"x", "", "", "sizes"}, 1,
              {{"axes", ints_attr({2, 3})}, {"keep_aspect_ratio_policy", string_attr("not_larger")}},
              {{"sizes", ints({6, 6})}}, x);
  EXPECT_EQ(y[0].sizes(), at::IntArrayRef({1, 2, 4, 6}));
  // not_smaller: scale 2 -> 6 x 10; nearest with scale 2 repeats each element.
  y = run_one("Resize", {"x", "", "", "sizes"}, 1,
              {{"axes", ints_attr({3, 2})}, {"keep_aspect_ratio_policy", string_attr("not_smaller")}},
              {{"sizes", ints({6, 6})}}, x);
  EXPECT_TRUE(at::equal(y[0], x.repeat_interleave(2, 2).repeat_interleave(2, 3)));
  // antialias is refused for linear (kUnsupported), accepted for nearest.
  try {
    run_one("Resize", {"x", "", "scales"}, 1, {{"mode", string_attr("linear")}, {"antialias", int_attr(1)}},
            {{"scales", at::tensor({1.0f, 1.0f, 0.5f, 0.5f})}}, x);
    FAIL() << "antialias accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("antialias"), std::string::npos);
  }
}

TEST(Opset18, ScatterReductionMaxMin) {
  at::Tensor x = at::tensor({1.0f, 5.0f, 3.0f});
  Graph g = graph18("scatter");
  g.inputs = {float_value("x")};
  g.outputs = {float_value("y"), float_value("z")};
  g.initializers["i"] = ints({0, 1, 1});
  g.initializers["u"] = at::tensor({4.0f, 2.0f, 7.0f});
  g.initializers["i2"] = ints({2, 0}).reshape({2, 1});
  g.initializers["u2"] = at::tensor({0.0f, 9.0f});
  g.nodes = {make_node("se", "ScatterElements", {"x", "i", "u"}, {"y"}, {{"reduction", string_attr("max")}}),
             make_node("snd", "ScatterND", {"x", "i2", "u2"}, {"z"}, {{"reduction", string_attr("min")}})};
  Executor ex(g);
  auto y = ex.run({x});
  EXPECT_TRUE(at::equal(y[0], at::tensor({4.0f, 7.0f, 3.0f})));
  EXPECT_TRUE(at::equal(y[1], at::tensor({1.0f, 5.0f, 0.0f})));
}

// Ops new in opset 18, which ONNX 1.12's node tests do not have.
TEST(Opset18, NewOps) {
  at::Tensor x = at::randn({2, 4, 3, 5});
  auto y = run_one("Mish", {"x"}, 1, {}, {}, x);
  EXPECT_TRUE(at::allclose(y[0], x * at::tanh(at::log1p(at::exp(x)))));
  // CenterCropPad: axis 2 padded 3 -> 6 (1 before, 2 after), axis 3 cropped 5 -> 2 (from 1).
  y = run_one("CenterCropPad", {"x", "shape"}, 1, {{"axes", ints_attr({2, -1})}}, {{"shape", ints({6, 2})}}, x);
  ASSERT_EQ(y[0].sizes(), at::IntArrayRef({2, 4, 6, 2}));
  EXPECT_TRUE(at::equal(y[0].narrow(2, 1, 3), x.narrow(3, 1, 2)));
  EXPECT_TRUE(y[0].narrow(2, 0, 1).eq(0).all().item<bool>());
  EXPECT_TRUE(y[0].narrow(2, 4, 2).eq(0).all().item<bool>());
  // GroupNormalization (opset 18: one scale and bias per group).
  at::Tensor scale = at::tensor({2.0f, 3.0f}), bias = at::tensor({0.5f, -1.0f});
  y = run_one("GroupNormalization", {"x", "s", "b"}, 1, {{"num_groups", int_attr(2)}}, {{"s", scale}, {"b", bias}}, x);
  at::Tensor g = x.reshape({2, 2, -1});
  at::Tensor norm = ((g - g.mean(-1, true)) / (g.var(-1, false, true) + 1e-5).sqrt()).reshape(x.sizes());
  at::Tensor want = norm * scale.repeat_interleave(2).view({1, 4, 1, 1}) + bias.repeat_interleave(2).view({1, 4, 1, 1});
  EXPECT_TRUE(at::allclose(y[0], want, 1e-4, 1e-5));
}

TEST(Opset18, BitwiseOps) {
  Graph g = graph18("bitwise");
  ValueInfo a;
  a.name = "a";
  a.dtype = DType::kInt32;
  g.inputs = {a};
  g.outputs = {float_value("and"), float_value("or"), float_value("xor"), float_value("not")};
  g.initializers["b"] = at::tensor({6, 3, -1}, at::kInt);
  g.nodes = {make_node("n1", "BitwiseAnd", {"a", "b"}, {"and"}), make_node("n2", "BitwiseOr", {"a", "b"}, {"or"}),
             make_node("n3", "BitwiseXor", {"a", "b"}, {"xor"}), make_node("n4", "BitwiseNot", {"a"}, {"not"})};
  Executor ex(g);
  auto y = ex.run({at::tensor({5, 12, 7}, at::kInt)});
  EXPECT_TRUE(at::equal(y[0], at::tensor({4, 0, 7}, at::kInt)));
  EXPECT_TRUE(at::equal(y[1], at::tensor({7, 15, -1}, at::kInt)));
  EXPECT_TRUE(at::equal(y[2], at::tensor({3, 15, -8}, at::kInt)));
  EXPECT_TRUE(at::equal(y[3], at::tensor({-6, -13, -8}, at::kInt)));
}

// --- recurrent ops against libtorch ---------------------------------------------------------

// Reorders the gate blocks of a [.., G*H, ..] tensor along dim 1 (or 0 for 1-D biases).
at::Tensor regate(const at::Tensor& t, std::vector<int64_t> order, int64_t dim) {
  auto parts = t.chunk(static_cast<int64_t>(order.size()), dim);
  std::vector<at::Tensor> out;
  for (int64_t i : order) out.push_back(parts[i]);
  return at::cat(out, dim);
}

struct RnnCase {
  std::string op;
  int64_t gates;
  std::vector<int64_t> onnx_to_torch;  // torch gate k is ONNX gate onnx_to_torch[k]
};

// Runs `op` bidirectional through mixq and through at::lstm/gru/rnn_tanh with the same weights.
void check_against_libtorch(const RnnCase& c, int64_t layout) {
  const int64_t T = 5, N = 3, In = 4, H = 6, D = 2, G = c.gates;
  at::manual_seed(1);
  at::Tensor W = at::randn({D, G * H, In}) * 0.5, R = at::randn({D, G * H, H}) * 0.5;
  at::Tensor B = at::randn({D, 2 * G * H}) * 0.5, h0 = at::randn({D, N, H}), c0 = at::randn({D, N, H});
  at::Tensor X = at::randn({T, N, In});
  const bool lstm = c.op == "LSTM";

  Graph g = graph18(c.op);
  g.inputs = {float_value("X")};
  g.outputs = {float_value("Y"), float_value("Y_h")};
  g.initializers = {{"W", W}, {"R", R}, {"B", B},
                    {"h0", layout == 1 ? h0.transpose(0, 1).contiguous() : h0}};
  std::vector<std::string> ins = {"X", "W", "R", "B", "", "h0"};
  std::vector<std::string> outs = {"Y", "Y_h"};
  if (lstm) {
    g.initializers["c0"] = layout == 1 ? c0.transpose(0, 1).contiguous() : c0;
    ins.push_back("c0");
    outs.push_back("Y_c");
    g.outputs.push_back(float_value("Y_c"));
  }
  std::map<std::string, Attribute> attrs = {{"hidden_size", int_attr(H)},
                                            {"direction", string_attr("bidirectional")},
                                            {"layout", int_attr(layout)}};
  if (c.op == "GRU") attrs["linear_before_reset"] = int_attr(1);  // libtorch's GRU
  g.nodes = {make_node("rnn", c.op, ins, outs, attrs)};
  Executor ex(g);
  auto got = ex.run({layout == 1 ? X.transpose(0, 1).contiguous() : X});

  std::vector<at::Tensor> params;
  for (int64_t d = 0; d < D; ++d) {
    params.push_back(regate(W[d], c.onnx_to_torch, 0));
    params.push_back(regate(R[d], c.onnx_to_torch, 0));
    params.push_back(regate(B[d].narrow(0, 0, G * H), c.onnx_to_torch, 0));
    params.push_back(regate(B[d].narrow(0, G * H, G * H), c.onnx_to_torch, 0));
  }
  at::Tensor y_ref, h_ref, c_ref;
  if (lstm) {
    std::tie(y_ref, h_ref, c_ref) = at::lstm(X, {h0, c0}, params, true, 1, 0.0, false, true, false);
  } else if (c.op == "GRU") {
    std::tie(y_ref, h_ref) = at::gru(X, h0, params, true, 1, 0.0, false, true, false);
  } else {
    std::tie(y_ref, h_ref) = at::rnn_tanh(X, h0, params, true, 1, 0.0, false, true, false);
  }
  at::Tensor Y = y_ref.reshape({T, N, D, H}).permute({0, 2, 1, 3});  // [T, D, N, H]
  if (layout == 1) {
    Y = Y.permute({2, 0, 1, 3});
    h_ref = h_ref.transpose(0, 1);
    if (lstm) c_ref = c_ref.transpose(0, 1);
  }
  EXPECT_TRUE(at::allclose(got[0], Y, 1e-4, 1e-5)) << c.op << " Y, layout " << layout;
  EXPECT_TRUE(at::allclose(got[1], h_ref, 1e-4, 1e-5)) << c.op << " Y_h, layout " << layout;
  if (lstm) {
    EXPECT_TRUE(at::allclose(got[2], c_ref, 1e-4, 1e-5)) << "LSTM Y_c, layout " << layout;
  }
}

const RnnCase kLstm{"LSTM", 4, {0, 2, 3, 1}};  // torch i f g o  <- ONNX i o f c
const RnnCase kGru{"GRU", 3, {1, 0, 2}};       // torch r z n    <- ONNX z r h
const RnnCase kRnn{"RNN", 1, {0}};

TEST(Recurrent, BidirectionalMatchesLibtorch) {
  for (const RnnCase* c : {&kLstm, &kGru, &kRnn})
    for (int64_t layout : {0, 1}) check_against_libtorch(*c, layout);
}

// With sequence_lens, each batch entry must equal a run over its own prefix alone, both ways,
// with zeros past its end.
TEST(Recurrent, SequenceLensMatchPerSequenceRuns) {
  const int64_t T = 4, N = 3, In = 2, H = 3;
  at::manual_seed(2);
  at::Tensor W = at::randn({2, 4 * H, In}), R = at::randn({2, 4 * H, H}), P = at::randn({2, 3 * H});
  at::Tensor X = at::randn({T, N, In});
  auto build = [&](bool with_lens) {
    Graph g = graph18("lstm_lens");
    g.inputs = {float_value("X")};
    g.outputs = {float_value("Y"), float_value("Y_h"), float_value("Y_c")};
    g.initializers = {{"W", W}, {"R", R}, {"P", P}, {"lens", at::tensor({4, 2, 1}, at::kInt)}};
    g.nodes = {make_node("lstm", "LSTM", {"X", "W", "R", "", with_lens ? "lens" : "", "", "", "P"},
                         {"Y", "Y_h", "Y_c"},
                         {{"hidden_size", int_attr(H)}, {"direction", string_attr("bidirectional")}})};
    return g;
  };
  Executor full(build(true)), single(build(false));
  auto got = full.run({X});
  const int64_t lens[] = {4, 2, 1};
  for (int64_t b = 0; b < N; ++b) {
    auto want = single.run({X.narrow(0, 0, lens[b]).narrow(1, b, 1)});
    at::Tensor y = got[0].narrow(2, b, 1);
    EXPECT_TRUE(at::allclose(y.narrow(0, 0, lens[b]), want[0], 1e-5, 1e-6)) << "batch " << b;
    EXPECT_TRUE(y.narrow(0, lens[b], T - lens[b]).eq(0).all().item<bool>()) << "batch " << b;
    EXPECT_TRUE(at::allclose(got[1].narrow(1, b, 1), want[1], 1e-5, 1e-6)) << "batch " << b;
    EXPECT_TRUE(at::allclose(got[2].narrow(1, b, 1), want[2], 1e-5, 1e-6)) << "batch " << b;
  }
}

TEST(Recurrent, GradientsReachTheWeights) {
  const int64_t H = 3;
  Graph g = graph18("gru_grad");
  g.inputs = {float_value("X")};
  g.outputs = {float_value("Y_h")};
  at::manual_seed(3);
  g.initializers = {{"W", at::randn({1, 3 * H, 2})}, {"R", at::randn({1, 3 * H, H})}};
  g.nodes = {make_node("gru", "GRU", {"X", "W", "R"}, {"", "Y_h"},
                       {{"hidden_size", int_attr(H)}, {"direction", string_attr("reverse")}})};
  Executor ex(g);
  ex.set_grad_enabled(true);
  at::Tensor w = g.initializers.at("W").clone().requires_grad_(true);
  ex.add_hook("W", [&](const std::string&, at::Tensor& t) { t = w; });
  at::Tensor out = ex.run({at::randn({4, 2, 2})})[0];
  ASSERT_TRUE(out.requires_grad());
  out.sum().backward();
  ASSERT_TRUE(w.grad().defined());
  EXPECT_GT(w.grad().abs().sum().item<double>(), 0);
}

TEST(Recurrent, BadAttributesFailAtCompileTimeNamingTheNode) {
  Graph g = graph18("bad_lstm");
  g.inputs = {float_value("X")};
  g.outputs = {float_value("Y")};
  g.initializers = {{"W", at::randn({1, 8, 2})}, {"R", at::randn({1, 8, 2})}};
  g.nodes = {make_node("my_lstm", "LSTM", {"X", "W", "R"}, {"Y"},
                       {{"hidden_size", int_attr(3)}})};  // W has 4*2 rows, not 4*3
  try {
    Executor ex(g);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("my_lstm"), std::string::npos) << e.what();
  }
  g.nodes[0].attrs = {{"direction", string_attr("sideways")}};
  EXPECT_THROW(Executor{g}, Error);
}

}  // namespace
}  // namespace mixq
