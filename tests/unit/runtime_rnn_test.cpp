// The runtime's recurrent layers (src/runtime/ops_rnn.cpp) against the executor's
// (src/exec/ops/rnn.cpp, libtorch) on what ONNX's node suite leaves out: reverse and bidirectional
// directions, layout 1 with every optional input, sequence_lens (with an empty sequence), clip,
// LSTM peepholes and input_forget, GRU linear_before_reset, W and R stored or fed at run time.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>

#include "exec/executor.h"
#include "graph_util.h"
#include "mixq/error.h"
#include "pack/from_qmodel.h"
#include "quant/qmodel.h"
#include "runtime/runtime.h"

namespace mixq {
namespace {

struct RnnCase {
  std::string op, direction;
  int64_t layout = 0;
  bool lens = false;    // sequence_lens {T, 2, 0}
  bool variant = false; // clip 1.5, LSTM peepholes + input_forget, GRU linear_before_reset, W/R fed
};

rt::Tensor to_rt(const at::Tensor& t0) {
  rt::Tensor x;
  const bool f = at::isFloatingType(t0.scalar_type());
  const at::Tensor t = t0.to(f ? at::kFloat : at::kLong).contiguous();
  x.shape.assign(t.sizes().begin(), t.sizes().end());
  if (f) x.f.assign(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
  else x.dtype = pack::ElemType::kInt64, x.i.assign(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
  return x;
}

// Max |got - want| / (1e-2 + |want|) over the elements (relative, absolute near 0: the two sum in
// other orders); fails on a shape mismatch.
double rel_err(const at::Tensor& want, const rt::Tensor& got) {
  EXPECT_EQ(std::vector<int64_t>(want.sizes().begin(), want.sizes().end()), got.shape);
  if (got.numel() != want.numel()) return 1e9;
  const at::Tensor w = want.to(at::kFloat).contiguous();
  double worst = 0;
  for (int64_t k = 0; k < w.numel(); ++k) {
    const double a = w.data_ptr<float>()[k], b = got.f[static_cast<size_t>(k)];
    worst = std::max(worst, std::fabs(a - b) / (1e-2 + std::fabs(a)));
  }
  return worst;
}

void check_case(const RnnCase& c) {
  const int64_t T = 5, N = 3, In = 4, H = 3;
  const int64_t D = c.direction == "bidirectional" ? 2 : 1;
  const int64_t G = c.op == "LSTM" ? 4 : c.op == "GRU" ? 3 : 1;
  const bool lstm = c.op == "LSTM";
  at::manual_seed(11);
  const float ws = c.variant ? 1.2f : 0.6f;  // larger weights make clip bite
  std::map<std::string, at::Tensor> vals = {
      {"X", c.layout ? at::randn({N, T, In}) : at::randn({T, N, In})},
      {"W", (at::rand({D, G * H, In}) - 0.5) * ws},
      {"R", (at::rand({D, G * H, H}) - 0.5) * ws},
      {"B", (at::rand({D, 2 * G * H}) - 0.5) * 0.4},
      {"h0", c.layout ? at::randn({N, D, H}) * 0.5 : at::randn({D, N, H}) * 0.5},
      {"c0", c.layout ? at::randn({N, D, H}) * 0.5 : at::randn({D, N, H}) * 0.5},
      {"P", (at::rand({D, 3 * H}) - 0.5)},
      {"lens", at::tensor({T, int64_t(2), int64_t(0)}, at::kLong)},
  };
  Graph g = new_graph("rnn_case");
  g.opsets[""] = 14;  // layout
  std::vector<std::string> ins = {"X", "W", "R", "B", c.lens ? "lens" : "", "h0"};
  if (lstm) ins.insert(ins.end(), {"c0", c.variant ? "P" : ""});
  std::vector<std::string> outs = {"Y", "Y_h"};
  if (lstm) outs.push_back("Y_c");
  std::map<std::string, Attribute> attrs = {{"direction", string_attr(c.direction)},
                                            {"hidden_size", int_attr(H)},
                                            {"layout", int_attr(c.layout)}};
  if (c.variant) {
    attrs["clip"] = float_attr(1.5f);
    if (lstm) attrs["input_forget"] = int_attr(1);
    if (c.op == "GRU") attrs["linear_before_reset"] = int_attr(1);
  }
  g.nodes.push_back(make_node("rnn", c.op, ins, outs, attrs));
  std::vector<at::Tensor> feeds;
  for (const auto& name : ins) {
    if (name.empty()) continue;
    const bool fed = name == "X" || (c.variant && (name == "W" || name == "R"));
    if (fed) {
      g.inputs.push_back(float_value(name, vals[name].sizes().vec()));
      feeds.push_back(vals[name]);
    } else {
      g.initializers[name] = vals[name];
    }
  }
  for (const auto& o : outs) g.outputs.push_back(float_value(o));

  Executor ex(g);
  const std::vector<at::Tensor> want = ex.run(feeds);
  QuantizedModel qm;
  qm.graph = g;
  rt::Model m(pack_quantized_model(qm));
  std::vector<rt::Tensor> rin;
  for (const auto& f : feeds) rin.push_back(to_rt(f));
  const std::vector<rt::Tensor> got = m.run(rin);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_LT(rel_err(want[i], got[i]), 1e-4) << c.op << " " << c.direction << " layout " << c.layout
                                              << (c.lens ? " sequence_lens" : "") << (c.variant ? " variant" : "")
                                              << ": output " << outs[i];
}

TEST(RuntimeRnn, MatchesTheExecutorOverAttributes) {
  for (const char* op : {"RNN", "GRU", "LSTM"})
    for (const char* dir : {"forward", "reverse", "bidirectional"})
      for (int64_t layout : {0, 1})
        for (bool lens : {false, true})
          for (bool variant : {false, true}) check_case({op, dir, layout, lens, variant});
}

// An activations list cannot be stored (and only the defaults have kernels): a clear refusal.
TEST(RuntimeRnn, OtherActivationsAreRefused) {
  Graph g = new_graph("rnn_acts");
  Attribute acts;
  acts.type = AttrType::kStrings;
  acts.strings = {"Relu"};
  g.nodes.push_back(make_node("rnn", "RNN", {"X", "W", "R"}, {"Y"}, {{"hidden_size", int_attr(2)}, {"activations", acts}}));
  g.inputs.push_back(float_value("X", {2, 1, 3}));
  g.initializers["W"] = at::ones({1, 2, 3});
  g.initializers["R"] = at::ones({1, 2, 2});
  g.outputs.push_back(float_value("Y"));
  QuantizedModel qm;
  qm.graph = g;
  try {
    rt::Model m(pack_quantized_model(qm));
    FAIL() << "an RNN with activations was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("activations"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mixq
