// ONNX export: float round trips, the QDQ export of quantized models (checked against a direct
// fake-quantized computation), the opset raise to 13, and atomic file output.
#include "onnx/export.h"
#include "quant/qdq.h"

#include <ATen/ATen.h>
#include <sys/stat.h>

#include <cmath>

#include "core/atomic_file.h"
#include "exec/executor.h"
#include "graph/fold_bn.h"
#include "onnx/import.h"
#include "graph_util.h"
#include "test_util.h"

namespace mixq {
namespace {

namespace fs = std::filesystem;

// x [N,3,6,6] -> Conv(W1 [4,3,3,3], b1) -> y -> Relu -> r -> Flatten -> f [N,64]
//   -> Gemm(W2, b2; transB) -> out [N,5]
Graph conv_relu_gemm(bool trans_b) {
  Graph g;
  g.name = "crg";
  g.source_path = "crg.onnx";
  g.opsets[""] = 13;
  g.ir_version = 7;
  g.inputs = {float_value("x", {-1, 3, 6, 6}, {"N", "", "", ""})};
  g.outputs = {float_value("out", {-1, 5}, {"N", ""})};
  g.initializers["W1"] = at::randn({4, 3, 3, 3}) * 0.3;
  g.initializers["b1"] = at::randn({4}) * 0.1;
  g.initializers["W2"] = trans_b ? at::randn({5, 64}) * 0.2 : at::randn({64, 5}) * 0.2;
  g.initializers["b2"] = at::randn({5}) * 0.1;
  g.nodes = {
      make_node("conv", "Conv", {"x", "W1", "b1"}, {"y"}, {{"kernel_shape", ints_attr({3, 3})}}),
      make_node("relu", "Relu", {"y"}, {"r"}),
      make_node("flat", "Flatten", {"r"}, {"f"}, {{"axis", int_attr(1)}}),
      make_node("fc", "Gemm", {"f", "W2", "b2"}, {"out"}, {{"transB", int_attr(trans_b)}})};
  g.value_info["y"] = float_value("y", {-1, 4, 4, 4}, {"N", "", "", ""});
  g.metadata["mixq.preprocess"] = "scale=1/255";
  return g;
}

// --- an independent quantizer for the tests (min-max on the 2-D view of quant/qscheme.h) -------

struct TestQuant {
  at::Tensor codes, scale, zp;  // codes like w; scale/zp shaped as quant/scheme.h says
  at::Tensor dq;                // s * (codes - z), float32
};

TestQuant quantize_minmax(const at::Tensor& w, const QScheme& s) {
  const int64_t rank = w.dim();
  const int64_t a =
      s.granularity == Granularity::kPerTensor ? 0 : (s.axis < 0 ? s.axis + rank : s.axis);
  at::Tensor w2 = s.granularity == Granularity::kPerTensor
                      ? w.reshape({1, -1})
                      : w.movedim(a, 0).reshape({w.size(a), -1});
  const int64_t C = w2.size(0), K = w2.size(1);
  const int64_t gs = s.granularity == Granularity::kPerGroup ? s.group_size : K;
  const int64_t G = (K + gs - 1) / gs;
  const float qmin = static_cast<float>(s.qmin()), qmax = static_cast<float>(s.qmax());
  at::Tensor scale = at::empty({C, G}), zp = at::empty({C, G});
  at::Tensor codes2 = at::empty({C, K}), dq2 = at::empty({C, K});
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t g = 0; g < G; ++g) {
      at::Tensor chunk = w2[c].slice(0, g * gs, std::min(K, (g + 1) * gs));
      float mn = std::min(0.0f, chunk.min().item<float>()),
            mx = std::max(0.0f, chunk.max().item<float>());
      float sc, z;
      if (s.symmetric) {
        sc = std::max(std::fabs(mn), std::fabs(mx)) / qmax;
        z = 0;
      } else {
        sc = (mx - mn) / (qmax - qmin);
        z = std::min(qmax, std::max(qmin, std::nearbyint(-mn / sc)));
      }
      if (sc == 0) sc = 1;
      scale[c][g] = sc;
      zp[c][g] = z;
      at::Tensor q = at::clamp(at::round(chunk / sc) + z, qmin, qmax);
      codes2[c].slice(0, g * gs, std::min(K, (g + 1) * gs)).copy_(q);
      dq2[c].slice(0, g * gs, std::min(K, (g + 1) * gs)).copy_((q - z) * sc);
    }
  }
  TestQuant r;
  auto back = [&](const at::Tensor& t2) {
    if (s.granularity == Granularity::kPerTensor) return t2.reshape(w.sizes());
    std::vector<int64_t> permuted = {w.size(a)};
    for (int64_t d = 0; d < rank; ++d)
      if (d != a) permuted.push_back(w.size(d));
    return t2.reshape(permuted).movedim(0, a).contiguous();
  };
  r.codes = back(codes2);
  r.dq = back(dq2);
  if (s.granularity == Granularity::kPerTensor) {
    r.scale = scale.reshape({});
    r.zp = zp.reshape({});
  } else if (s.granularity == Granularity::kPerChannel) {
    std::vector<int64_t> shape(static_cast<size_t>(rank), 1);
    shape[static_cast<size_t>(a)] = C;
    r.scale = scale.reshape(shape);
    r.zp = zp.reshape(shape);
  } else {
    r.scale = scale;
    r.zp = zp;
  }
  return r;
}

QScheme scheme(int bits, bool sym, Granularity gran, int64_t axis = 0, int64_t group = 0) {
  QScheme s;
  s.bits = bits;
  s.symmetric = sym;
  s.granularity = gran;
  s.axis = axis;
  s.group_size = group;
  return s;
}

QuantizedWeight qweight(const Graph& g, const std::string& node, const std::string& w,
                        const QScheme& s, at::Tensor* dq) {
  TestQuant t = quantize_minmax(g.initializers.at(w), s);
  QuantizedWeight qw;
  qw.node = node;
  qw.weight = w;
  qw.scheme = s;
  qw.params.scale = t.scale;
  qw.params.zero_point = t.zp;
  qw.codes = t.codes;
  *dq = t.dq;
  return qw;
}

// Activation parameters from the range [lo, hi] (widened to contain 0).
QuantizedActivation qact(const std::string& tensor, int bits, bool sym, float lo, float hi) {
  QuantizedActivation qa;
  qa.tensor = tensor;
  qa.scheme = scheme(bits, sym, Granularity::kPerTensor);
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  float s, z;
  if (sym) {
    s = std::max(std::fabs(lo), std::fabs(hi)) / static_cast<float>(qa.scheme.qmax());
    z = 0;
  } else {
    s = (hi - lo) / static_cast<float>(qa.scheme.qmax() - qa.scheme.qmin());
    z = std::nearbyint(-lo / s);
  }
  qa.params.scale = at::scalar_tensor(s);
  qa.params.zero_point = at::scalar_tensor(z);
  return qa;
}

// DQ(Q(x)) in float32, division first (quant/qscheme.h).
at::Tensor fake_quant(const at::Tensor& x, const QuantizedActivation& qa) {
  const float s = qa.params.scale.item<float>(), z = qa.params.zero_point.item<float>();
  at::Tensor q = at::clamp(at::round(x / s) + z, static_cast<double>(qa.scheme.qmin()),
                           static_cast<double>(qa.scheme.qmax()));
  return (q - z) * s;
}

// The reference: the float graph with weights replaced by their dequantized values and the
// quantized activations fake-quantized through executor hooks.
at::Tensor reference_output(const QuantizedModel& qm, const std::map<std::string, at::Tensor>& dq,
                            const at::Tensor& x) {
  Graph g = qm.graph;
  for (const auto& kv : dq) g.initializers[kv.first] = kv.second;
  Executor ex(g);
  for (const auto& qa : qm.activations)
    ex.add_hook(qa.tensor, [qa](const std::string&, at::Tensor& t) { t = fake_quant(t, qa); });
  return ex.run({x})[0];
}

at::Tensor run_graph(const Graph& g, const at::Tensor& x) {
  Executor ex(g);
  return ex.run({x})[0];
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

const Node* find_op(const Graph& g, const std::string& op) {
  for (const auto& n : g.nodes)
    if (n.op_type == op) return &n;
  return nullptr;
}

// ---------------------------------------------------------------------------------------------

TEST(ExportOnnx, FloatGraphRoundTrips) {
  at::manual_seed(11);
  Graph g = conv_relu_gemm(true);
  // A few more attribute kinds: string (auto_pad), float (LeakyRelu), tensor (Constant).
  g.nodes[0].attrs["auto_pad"] = string_attr("NOTSET");
  Attribute tv;
  tv.type = AttrType::kTensor;
  tv.t = at::randn({5});
  g.nodes.back().outputs[0] = "fc_out";
  g.nodes.push_back(make_node("const", "Constant", {}, {"c"}, {{"value", tv}}));
  g.nodes.push_back(make_node("add", "Add", {"fc_out", "c"}, {"sum"}));
  g.nodes.push_back(
      make_node("leaky", "LeakyRelu", {"sum"}, {"out"}, {{"alpha", float_attr(0.3f)}}));

  const std::string bytes = graph_to_onnx_bytes(g);
  Graph back = load_onnx_bytes(bytes, "roundtrip.onnx", "");
  EXPECT_EQ(back.producer, "mixq");
  EXPECT_GE(back.ir_version, 7);
  EXPECT_EQ(back.opset(), 13);
  EXPECT_EQ(back.metadata, g.metadata);
  ASSERT_EQ(back.inputs.size(), 1u);
  EXPECT_EQ(back.inputs[0].str(), g.inputs[0].str());
  EXPECT_EQ(back.outputs[0].str(), g.outputs[0].str());
  ASSERT_TRUE(back.value_info.count("y"));
  EXPECT_EQ(back.value_info.at("y").str(), "float[N,4,4,4]");
  ASSERT_EQ(back.nodes.size(), g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    EXPECT_EQ(back.nodes[i].name, g.nodes[i].name);
    EXPECT_EQ(back.nodes[i].inputs, g.nodes[i].inputs);
    EXPECT_EQ(back.nodes[i].attrs.size(), g.nodes[i].attrs.size());
  }
  for (const auto& kv : g.initializers)
    EXPECT_TRUE(at::equal(back.initializers.at(kv.first), kv.second)) << kv.first;
  at::Tensor x = at::randn({3, 3, 6, 6});
  EXPECT_TRUE(at::equal(run_graph(back, x), run_graph(g, x)));
}

TEST(ExportOnnx, AllAttributeAndTensorTypesRoundTrip) {
  Graph g;
  g.name = "attrs";
  g.opsets[""] = 13;
  g.opsets["com.example"] = 1;
  g.inputs = {float_value("x", {2})};
  g.outputs = {float_value("y", {2})};
  Node n = make_node("custom", "Foo", {"x", "i64", "i8", "u8", "b", "h", "d", "i32"}, {"y"});
  n.domain = "com.example";
  n.attrs["f"] = float_attr(1.5f);
  n.attrs["i"] = int_attr(-7);
  n.attrs["s"] = string_attr(std::string("a\0b", 3));
  Attribute t;
  t.type = AttrType::kTensor;
  t.t = at::arange(6, at::kLong).reshape({2, 3});
  n.attrs["t"] = t;
  Attribute fs;
  fs.type = AttrType::kFloats;
  fs.floats = {0.5f, -2.0f};
  n.attrs["fs"] = fs;
  n.attrs["is"] = ints_attr({1, 2, 3});
  Attribute ss;
  ss.type = AttrType::kStrings;
  ss.strings = {"x", "", "zz"};
  n.attrs["ss"] = ss;
  g.nodes = {n};
  g.initializers["i64"] = at::arange(5, at::kLong);
  g.initializers["i8"] = at::tensor({-128, 0, 127}, at::kChar);
  g.initializers["u8"] = at::tensor({0, 200, 255}, at::kByte);
  g.initializers["b"] = at::tensor({1, 0, 1}, at::kByte).to(at::kBool);
  g.initializers["h"] = at::randn({3}).to(at::kHalf);
  g.initializers["d"] = at::randn({2, 2}, at::kDouble);
  g.initializers["i32"] = at::zeros({0, 3}, at::kInt);  // empty tensors too

  ImportOptions no_checker;
  no_checker.run_checker = false;  // com.example has no schemas
  Graph back = load_onnx_bytes(graph_to_onnx_bytes(g), "attrs.onnx", "", no_checker);
  EXPECT_EQ(back.opsets, g.opsets);
  ASSERT_EQ(back.nodes.size(), 1u);
  const Node& b = back.nodes[0];
  EXPECT_EQ(b.domain, "com.example");
  EXPECT_EQ(b.attr("f")->type, AttrType::kFloat);
  EXPECT_EQ(b.attr("f")->f, 1.5f);
  EXPECT_EQ(b.attr("i")->i, -7);
  EXPECT_EQ(b.attr("s")->s, std::string("a\0b", 3));
  EXPECT_TRUE(at::equal(b.attr("t")->t, t.t));
  EXPECT_EQ(b.attr("fs")->floats, fs.floats);
  EXPECT_EQ(b.attr("is")->ints, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(b.attr("ss")->strings, ss.strings);
  for (const auto& kv : g.initializers) {
    const at::Tensor& got = back.initializers.at(kv.first);
    EXPECT_EQ(got.scalar_type(), kv.second.scalar_type()) << kv.first;
    EXPECT_TRUE(at::equal(got, kv.second)) << kv.first;
  }
}

TEST(ExportOnnx, GraphAttributesAreRefused) {
  Graph g = conv_relu_gemm(true);
  Attribute body;
  body.type = AttrType::kGraph;
  g.nodes[1].attrs["body"] = body;
  try {
    graph_to_onnx_bytes(g);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("relu"), std::string::npos) << e.what();
  }
}

TEST(ExportOnnx, SaveRunsTheChecker) {
  test::TempDir dir;
  Graph g = conv_relu_gemm(true);
  save_onnx(g, dir.file("m.onnx"));
  Graph back = load_onnx(dir.file("m.onnx"));
  EXPECT_EQ(back.nodes.size(), g.nodes.size());
  // An op ONNX does not know fails the checker: a bug in whoever built the graph.
  g.nodes[1].op_type = "NoSuchOp";
  try {
    save_onnx(g, dir.file("bad.onnx"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInternal);
    EXPECT_NE(std::string(e.what()).find("NoSuchOp"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir.file("bad.onnx")));
}

// The core QDQ test: every granularity at 4 and 8 bits, signed and unsigned, Gemm with and
// without transB (per-group with and without padding and transposition).
TEST(ExportQdq, MatchesFakeQuantizedComputation) {
  at::manual_seed(12);
  test::TempDir dir;
  int cases = 0;
  for (bool trans_b : {true, false}) {
    for (Granularity gran :
         {Granularity::kPerTensor, Granularity::kPerChannel, Granularity::kPerGroup}) {
      for (int bits : {4, 8}) {
        for (bool sym : {false, true}) {
          SCOPED_TRACE(std::string(granularity_name(gran)) + " bits " + std::to_string(bits) +
                       (sym ? " sym" : " asym") + (trans_b ? " transB" : ""));
          QuantizedModel qm;
          qm.graph = conv_relu_gemm(trans_b);
          std::map<std::string, at::Tensor> dq;
          // W1 [4,3,3,3]: K = 27, groups of 8 (padded to 32). W2: K = 64, groups of 16 or 10.
          qm.weights.push_back(
              qweight(qm.graph, "conv", "W1", scheme(bits, sym, gran, 0, 8), &dq["W1"]));
          qm.weights.push_back(qweight(
              qm.graph, "fc", "W2",
              scheme(12 - bits, !sym, gran, trans_b ? 0 : 1, trans_b ? 16 : 10), &dq["W2"]));
          qm.activations.push_back(qact("x", 8, sym, -1.5f, 2.0f));
          qm.activations.push_back(qact("f", 4, sym, 0.0f, 1.0f));

          const std::string path = dir.file("q" + std::to_string(cases++) + ".onnx");
          save_onnx(qdq_graph(qm), path);    // runs onnx::checker::check_model
          Graph q = load_onnx(path);  // and the importer's own checks
          EXPECT_EQ(q.metadata.at("mixq.quantized"), "qdq");
          EXPECT_EQ(q.metadata.at("mixq.preprocess"), "scale=1/255");
          EXPECT_FALSE(q.is_initializer("W1"));  // replaced by its codes
          const at::Tensor& codes = q.initializers.at("W1_quantized");
          EXPECT_EQ(codes.scalar_type(), sym ? at::kChar : at::kByte);
          EXPECT_GE(codes.to(at::kLong).min().item<int64_t>(), qm.weights[0].scheme.qmin());
          EXPECT_LE(codes.to(at::kLong).max().item<int64_t>(), qm.weights[0].scheme.qmax());
          if (gran == Granularity::kPerGroup)
            EXPECT_EQ(codes.sizes(), at::IntArrayRef({4 * 4, 8}));
          else
            EXPECT_EQ(codes.sizes(), at::IntArrayRef({4, 3, 3, 3}));
          EXPECT_EQ(q.initializers.at("f_zero_point").scalar_type(), sym ? at::kChar : at::kByte);
          // 4-bit activation: a Clip before its QuantizeLinear; 8-bit: none.
          int clips = 0;
          for (const auto& n : q.nodes) clips += n.op_type == "Clip";
          EXPECT_EQ(clips, 1);

          at::Tensor x = at::randn({3, 3, 6, 6}) * 1.2;  // some values saturate
          at::Tensor want = reference_output(qm, dq, x);
          at::Tensor got = run_graph(q, x);
          EXPECT_LE(max_abs_diff(got, want), 1e-5 * (1 + want.abs().max().item<double>()));
          EXPECT_GT(max_abs_diff(got, run_graph(qm.graph, x)), 1e-4);  // it did quantize
        }
      }
    }
  }
}

TEST(ExportQdq, SixteenBitsAreStoredAsFloat) {
  at::manual_seed(13);
  QuantizedModel qm;
  qm.graph = conv_relu_gemm(true);
  std::map<std::string, at::Tensor> dq;
  qm.weights.push_back(
      qweight(qm.graph, "conv", "W1", scheme(16, false, Granularity::kPerChannel), &dq["W1"]));
  qm.weights.push_back(
      qweight(qm.graph, "fc", "W2", scheme(16, true, Granularity::kPerGroup, 0, 20), &dq["W2"]));
  qm.activations.push_back(qact("x", 16, false, -1.0f, 1.0f));
  Graph q = load_onnx_bytes(graph_to_onnx_bytes(qdq_graph(qm)), "q16.onnx", "");
  EXPECT_TRUE(q.is_initializer("W1_dequantized"));
  EXPECT_EQ(find_op(q, "QuantizeLinear"), nullptr);
  at::Tensor x = at::randn({2, 3, 6, 6});
  at::Tensor want = reference_output(qm, dq, x);
  EXPECT_LE(max_abs_diff(run_graph(q, x), want), 1e-5 * (1 + want.abs().max().item<double>()));
}

TEST(ExportQdq, OnlyQuantizedLayersReadQuantizedValues) {
  at::manual_seed(14);
  // W1 is also read by a second (unquantized) Conv; x also feeds it. Both keep the float tensors.
  QuantizedModel qm;
  qm.graph = conv_relu_gemm(true);
  Graph& g = qm.graph;
  g.nodes.push_back(make_node("conv_b", "Conv", {"x", "W1"}, {"y_b"}));
  g.outputs.push_back(float_value("y_b", {-1, 4, 4, 4}, {"N", "", "", ""}));
  std::map<std::string, at::Tensor> dq;
  qm.weights.push_back(
      qweight(g, "conv", "W1", scheme(4, true, Granularity::kPerChannel), &dq["W1"]));
  qm.activations.push_back(qact("x", 8, false, -2.0f, 2.0f));
  qm.activations.push_back(qact("out", 8, false, -2.0f, 2.0f));  // read by no layer: ignored

  Graph q = qdq_graph(qm);
  EXPECT_TRUE(q.is_initializer("W1"));  // still read by conv_b
  for (const auto& n : q.nodes) {
    if (n.name == "conv") {
      EXPECT_EQ(n.inputs[0], "x_dq");
      EXPECT_EQ(n.inputs[1], "W1_dq");
    }
    if (n.name == "conv_b") {
      EXPECT_EQ(n.inputs, (std::vector<std::string>{"x", "W1"}));
    }
  }
  EXPECT_EQ(q.outputs[0].name, "out");
  at::Tensor x = at::randn({2, 3, 6, 6});
  Graph bytes_back = load_onnx_bytes(graph_to_onnx_bytes(q), "q.onnx", "");
  Executor ex(bytes_back), fl(g);
  auto got = ex.run({x}), flt = fl.run({x});
  EXPECT_TRUE(at::equal(got[1], flt[1]));  // conv_b computes in float
  EXPECT_FALSE(at::equal(got[0], flt[0]));
}

TEST(ExportQdq, RaisesOldOpsetsTo13) {
  at::manual_seed(15);
  // Opset 10: Pad and Clip with attributes, Dropout, Unsqueeze/Squeeze/ReduceSum with 'axes',
  // Softmax(axis=1) on a 4-D tensor (flattening semantics before opset 13).
  QuantizedModel qm;
  Graph& g = qm.graph;
  g.name = "old";
  g.opsets[""] = 10;
  g.ir_version = 5;
  g.inputs = {float_value("x", {-1, 3, 4, 4}, {"N", "", "", ""})};
  g.outputs = {float_value("out", {-1, 5}, {"N", ""})};
  g.initializers["W"] = at::randn({2, 3, 1, 1});
  g.initializers["fc.W"] = at::randn({5, 2 * 6 * 6});
  g.nodes = {
      make_node("pad", "Pad", {"x"}, {"p"},
                {{"pads", ints_attr({0, 0, 1, 1, 0, 0, 1, 1})}, {"value", float_attr(0.25f)}}),
      make_node("clip", "Clip", {"p"}, {"c"},
                {{"min", float_attr(-0.5f)}, {"max", float_attr(1.0f)}}),
      make_node("drop", "Dropout", {"c"}, {"d"}, {{"ratio", float_attr(0.3f)}}),
      make_node("conv", "Conv", {"d", "W"}, {"y"}),
      make_node("unsq", "Unsqueeze", {"y"}, {"u"}, {{"axes", ints_attr({0})}}),
      make_node("sq", "Squeeze", {"u"}, {"s"}, {{"axes", ints_attr({0})}}),
      make_node("softmax", "Softmax", {"s"}, {"sm"}, {{"axis", int_attr(1)}}),
      make_node("rsum", "ReduceSum", {"sm"}, {"rs"},
                {{"axes", ints_attr({1})}, {"keepdims", int_attr(1)}}),
      make_node("mul", "Mul", {"sm", "rs"}, {"m"}),
      make_node("flat", "Flatten", {"m"}, {"f"}),
      make_node("fc", "Gemm", {"f", "fc.W"}, {"out"}, {{"transB", int_attr(1)}}),
  };
  std::map<std::string, at::Tensor> dq;
  qm.weights.push_back(
      qweight(g, "fc", "fc.W", scheme(8, true, Granularity::kPerChannel), &dq["fc.W"]));
  qm.activations.push_back(qact("f", 8, false, 0.0f, 0.05f));

  test::TempDir dir;
  save_onnx(qdq_graph(qm), dir.file("old.onnx"));
  Graph q = load_onnx(dir.file("old.onnx"));
  EXPECT_EQ(q.opset(), 13);
  EXPECT_GE(q.ir_version, 7);
  EXPECT_EQ(find_op(q, "Dropout"), nullptr);
  at::Tensor x = at::randn({2, 3, 4, 4});
  at::Tensor want = reference_output(qm, dq, x);
  EXPECT_LE(max_abs_diff(run_graph(q, x), want), 1e-5 * (1 + want.abs().max().item<double>()));

  // Resize before opset 11 changed meaning: refused with a clear message.
  QuantizedModel r = qm;
  r.graph.nodes[2] = make_node("drop", "Upsample", {"c", "W"}, {"d"});
  try {
    qdq_graph(r);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("opset_version=13"), std::string::npos) << e.what();
  }
}

TEST(ExportQdq, RaisesOpset8AndHandlesAnyChannelAxis) {
  at::manual_seed(17);
  // Opset 8: Slice and Split with attributes, BatchNormalization with 'spatial'. The conv weight
  // is quantized per group along axis 2 (a permutation that is not its own inverse) and per
  // channel along axis 1.
  for (int64_t axis : {2, 1, -1}) {
    SCOPED_TRACE("axis " + std::to_string(axis));
    QuantizedModel qm;
    Graph& g = qm.graph;
    g.opsets[""] = 8;
    g.ir_version = 3;
    g.inputs = {float_value("x", {-1, 6, 5, 5}, {"N", "", "", ""})};
    g.outputs = {float_value("out", {-1, 4, 3, 3}, {"N", "", "", ""})};
    g.initializers["W"] = at::randn({4, 4, 3, 3});
    for (const char* p : {"bn_g", "bn_b", "bn_m"}) g.initializers[p] = at::randn({4});
    g.initializers["bn_v"] = at::rand({4}) + 0.5;
    g.nodes = {
        make_node("slice", "Slice", {"x"}, {"s"},
                  {{"axes", ints_attr({1})}, {"starts", ints_attr({1})}, {"ends", ints_attr({5})}}),
        make_node("split", "Split", {"s"}, {"a", "b"},
                  {{"axis", int_attr(1)}, {"split", ints_attr({1, 3})}}),
        make_node("cat", "Concat", {"b", "a"}, {"c"}, {{"axis", int_attr(1)}}),
        make_node("conv", "Conv", {"c", "W"}, {"y"}),
        make_node("bn", "BatchNormalization", {"y", "bn_g", "bn_b", "bn_m", "bn_v"}, {"out"},
                  {{"spatial", int_attr(1)}}),
    };
    std::map<std::string, at::Tensor> dq;
    const Granularity gran = axis == 1 ? Granularity::kPerChannel : Granularity::kPerGroup;
    qm.weights.push_back(qweight(g, "conv", "W", scheme(4, axis == -1, gran, axis, 7), &dq["W"]));
    qm.activations.push_back(qact("c", 5, false, -1.0f, 1.5f));

    test::TempDir dir;
    save_onnx(qdq_graph(qm), dir.file("old.onnx"));
    Graph q = load_onnx(dir.file("old.onnx"));
    EXPECT_EQ(q.opset(), 13);
    if (gran == Granularity::kPerGroup) {
      EXPECT_NE(find_op(q, "Transpose"), nullptr);
      EXPECT_NE(find_op(q, "Slice"), nullptr);
    }
    at::Tensor x = at::randn({2, 6, 5, 5});
    at::Tensor want = reference_output(qm, dq, x);
    EXPECT_LE(max_abs_diff(run_graph(q, x), want), 1e-5 * (1 + want.abs().max().item<double>()));
  }
}

TEST(ExportQdq, RejectsBadInputs) {
  at::manual_seed(16);
  QuantizedModel qm;
  qm.graph = conv_relu_gemm(true);
  std::map<std::string, at::Tensor> dq;
  qm.weights.push_back(
      qweight(qm.graph, "conv", "W1", scheme(4, false, Granularity::kPerTensor), &dq["W1"]));
  auto expect_kind = [](const QuantizedModel& m, ErrorKind kind, const std::string& needle) {
    try {
      qdq_graph(m);
      ADD_FAILURE() << "expected an error mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), kind) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  QuantizedModel bad = qm;
  bad.weights[0].codes = bad.weights[0].codes + 16;  // outside [0, 15]
  expect_kind(bad, ErrorKind::kInvalidArgument, "W1");
  bad = qm;
  bad.weights[0].node = "nope";
  expect_kind(bad, ErrorKind::kInvalidArgument, "nope");
  bad = qm;
  bad.graph.opsets[""] = 18;
  expect_kind(bad, ErrorKind::kUnsupported, "opset 18");
}

// Every bundled fixture model with float inputs: BN folding keeps the outputs, and the folded
// graph survives export -> import bit for bit.
TEST(ExportOnnx, FixtureModelsFoldAndRoundTrip) {
  int tried = 0;
  if (!fs::is_directory(test::models_dir())) GTEST_SKIP() << "no models/ directory";
  for (const auto& e : fs::directory_iterator(test::models_dir())) {
    if (e.path().extension() != ".onnx") continue;
    SCOPED_TRACE(e.path().string());
    Graph g = load_onnx(e.path().string());
    std::vector<at::Tensor> inputs;
    for (const auto& vi : g.inputs) {
      if (vi.dtype != DType::kFloat || !vi.has_shape) break;
      std::vector<int64_t> dims = vi.dims;
      for (auto& d : dims) d = d < 0 ? 2 : d;
      inputs.push_back(at::rand(dims));
    }
    if (inputs.size() != g.inputs.size()) continue;
    ++tried;
    Graph folded = g;
    const int n_folded = fold_batchnorm(folded);
    remove_identity_and_dropout(folded);
    Graph back = load_onnx_bytes(graph_to_onnx_bytes(folded), "folded.onnx", "");
    Executor e0(g), e1(folded), e2(back);
    auto y0 = e0.run(inputs), y1 = e1.run(inputs), y2 = e2.run(inputs);
    const double tol = n_folded ? 1e-4 : 1e-12;  // relative to the largest output
    for (size_t i = 0; i < y0.size(); ++i) {
      const double scale = y0[i].abs().max().item<double>() + 1e-12;
      EXPECT_LE(max_abs_diff(y1[i], y0[i]) / scale, tol) << "output " << i;
      EXPECT_TRUE(at::equal(y2[i], y1[i])) << "output " << i;
    }
  }
  if (tried == 0) GTEST_SKIP() << "no fixture model with float inputs";
}

// --- atomic output ----------------------------------------------------------------------------

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(AtomicFile, WritesAndReplacesLeavingNoTemporaryFile) {
  test::TempDir dir;
  const std::string path = dir.file("model.onnx");
  write_file_atomic(path, "first");
  EXPECT_EQ(test::read_file(path), "first");
  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  struct stat before {};
  ASSERT_EQ(::stat(path.c_str(), &before), 0);
  std::ifstream reader(path, std::ios::binary);  // opened before the replacement

  write_file_atomic(path, std::string("second\0version", 14));
  EXPECT_EQ(test::read_file(path), std::string("second\0version", 14));
  std::string old((std::istreambuf_iterator<char>(reader)), std::istreambuf_iterator<char>());
  EXPECT_EQ(old, "first");  // a reader of the old file never sees a mix: the file was renamed over
  struct stat after {};
  ASSERT_EQ(::stat(path.c_str(), &after), 0);
  EXPECT_NE(before.st_ino, after.st_ino);
  EXPECT_EQ(after.st_mode & 07777, 0640u);  // permissions kept
  EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{"model.onnx"});

  write_file_atomic(path, "");
  EXPECT_EQ(fs::file_size(path), 0u);
  EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{"model.onnx"});
}

TEST(AtomicFile, MissingDirectoryIsAClearIoError) {
  test::TempDir dir;
  const std::string path = dir.file("no/such/dir/model.onnx");
  try {
    write_file_atomic(path, "x");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kIO);
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
    EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;
  }
  try {
    save_onnx(conv_relu_gemm(true), path);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kIO);
  }
  // A directory as the target.
  try {
    write_file_atomic(dir.path(), "x");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kIO);
    EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(list_dir(dir.path()).empty());
}

TEST(AtomicFile, SameFile) {
  test::TempDir dir;
  const std::string a = dir.file("a.onnx"), b = dir.file("b.onnx");
  write_file_atomic(a, "a");
  write_file_atomic(b, "b");
  fs::create_symlink(a, dir.file("link.onnx"));
  EXPECT_TRUE(same_file(a, a));
  EXPECT_TRUE(same_file(a, dir.path() + "/./a.onnx"));
  EXPECT_TRUE(same_file(a, dir.file("link.onnx")));
  EXPECT_FALSE(same_file(a, b));
  EXPECT_FALSE(same_file(a, dir.file("missing.onnx")));
  EXPECT_TRUE(same_file(dir.file("missing.onnx"), dir.path() + "/x/../missing.onnx"));
}

}  // namespace
}  // namespace mixq
