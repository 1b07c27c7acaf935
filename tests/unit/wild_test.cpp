// Models from other exporters: Constant-node weights, dynamic axes, outputs that are not class
// scores, data without labels (tests/fixtures/make_wild.py makes the model and its references).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>

#include "data/dataset.h"
#include "data/npy.h"
#include "exec/evaluate.h"
#include "exec/fidelity.h"
#include "exec/fold_constants.h"
#include "exec/shapes.h"
#include "graph/layers.h"
#include "onnx/import.h"
#include "test_util.h"

namespace mixq::test {
namespace {

std::string wild(const std::string& f) { return source_dir() + "/tests/fixtures/" + f; }
const std::string kModel = "wild-constant-dynamic.onnx";

double rel_err(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / std::max(b.abs().max().item<double>(), 1e-6);
}

TEST(FoldConstants, ConstantIdentityAndCastWeightsBecomeInitializers) {
  Graph raw = load_onnx(wild(kModel));
  EXPECT_TRUE(find_layers(raw).size() < 4u);  // Constant / Cast weights are invisible before folding
  Graph g = load_model(wild(kModel));
  for (const auto& n : g.nodes) {
    EXPECT_NE(n.op_type, "Constant") << n.name;
    EXPECT_NE(n.op_type, "Cast") << n.name;
    EXPECT_NE(n.op_type, "Identity") << n.name;
  }
  auto layers = find_layers(g);
  ASSERT_EQ(layers.size(), 4u);
  EXPECT_EQ(layers[0].node, "conv1");
  EXPECT_EQ(layers[0].bias, "b1");
  EXPECT_EQ(layers[1].node, "conv2");
  EXPECT_EQ(g.initializers.at(layers[1].weight).scalar_type(), at::kFloat);  // the Cast ran
  EXPECT_EQ(layers[3].op, "MatMul");
}

TEST(FoldConstants, OutputsUnchangedAtEverySize) {
  Executor ex(load_model(wild(kModel)));
  for (const char* tag : {"a", "b"}) {
    auto in = load_npz(wild(std::string("wild-") + tag + ".npz"));
    auto ref = load_npz(wild(std::string("wild-") + tag + ".ref.npz"));
    auto out = ex.run({in.at("x")});
    EXPECT_LE(rel_err(out[0], ref.at("feat")), 1e-5) << tag;
    EXPECT_LE(rel_err(out[1], ref.at("emb")), 1e-5) << tag;
  }
}

TEST(FoldConstants, StaticShapeChainsFold) {
  // Shape of a statically shaped value and Gather of a static dim fold; a dynamic dim stays.
  Graph g = load_model(wild(kModel));
  bool gather_left = false;
  for (const auto& n : g.nodes) gather_left = gather_left || n.op_type == "Gather";
  EXPECT_TRUE(gather_left);  // Gather(Shape(gap), 0) is the dynamic batch: kept
}

TEST(DynamicShapes, InputShapeParsingAndUnknownDims) {
  Graph g = load_model(wild(kModel));
  EXPECT_EQ(unknown_dims(g), "'x' dims 2 (H), 3 (W)");
  InputShapes s;
  parse_input_shape("x:1,3,48,320", g, s);
  EXPECT_EQ(s.at("x"), (std::vector<int64_t>{1, 3, 48, 320}));
  EXPECT_EQ(unknown_dims(g, s), "");
  EXPECT_THROW(parse_input_shape("x:1,4,48,320", g, s), Error);  // channel is static 3
  EXPECT_THROW(parse_input_shape("y:1,3,8,8", g, s), Error);
  EXPECT_THROW(parse_input_shape("x:1,3,a,8", g, s), Error);
  auto layers = find_layers(g);
  Executor ex(g);
  try {
    annotate_macs(ex, layers);
    FAIL() << "H = W = 1 cannot pass the 3x3 pool";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--input-shape"), std::string::npos) << e.what();
  }
  annotate_macs(ex, layers, s);
  EXPECT_EQ(layers[0].macs, 8 * 27 * 48 * 320);
}

TEST(Fidelity, MetricsOnKnownNoise) {
  FidelityAccumulator same({"y"});
  at::Tensor x = at::randn({4, 10}, at::TensorOptions().dtype(at::kFloat));
  same.add({x}, {x});
  auto f = same.result();
  EXPECT_TRUE(std::isinf(f[0].sqnr_db));
  EXPECT_DOUBLE_EQ(*f[0].top1_agree, 100.0);
  EXPECT_NEAR(f[0].cosine, 1.0, 1e-12);
  EXPECT_TRUE(fidelity_json(f)[0]["sqnr_db"].is_null());
  // Noise at 1/10 of the signal's energy: 10 dB.
  FidelityAccumulator acc({"y"});
  at::Tensor r = at::ones({2, 5, 3, 3});
  acc.add({r}, {r + std::sqrt(0.1)});
  f = acc.result();
  EXPECT_NEAR(f[0].sqnr_db, 10.0, 1e-5);  // float32 noise
  EXPECT_FALSE(f[0].top1_agree.has_value());  // rank 4: not class scores
  EXPECT_NEAR(f[0].max_abs_err, std::sqrt(0.1), 1e-6);
  EXPECT_THROW(acc.add({r}, {at::ones({2, 5})}), Error);
  EXPECT_EQ(resolve_metric(Metric::kAuto, false), Metric::kSqnr);
  EXPECT_EQ(resolve_metric(Metric::kAuto, true), Metric::kTop1);
  EXPECT_THROW(parse_metric("psnr"), Error);
}

TEST(Npz, SaveLoadRoundTrip) {
  TempDir d;
  std::map<std::string, at::Tensor> arrays = {{"a", at::arange(12, at::kFloat).reshape({3, 4})},
                                              {"b", at::arange(5, at::kLong)}};
  save_npz(d.file("x.npz"), arrays);
  auto back = load_npz(d.file("x.npz"));
  ASSERT_EQ(back.size(), 2u);
  EXPECT_TRUE(at::equal(back.at("a"), arrays.at("a")));
  EXPECT_TRUE(at::equal(back.at("b"), arrays.at("b")));
}

TEST(Preprocess, PerChannelMeanStdAndResizedFmnist) {
  ValueInfo rgb;
  rgb.name = "img";
  rgb.dtype = DType::kFloat;
  rgb.has_shape = true;
  rgb.dims = {-1, 3, 32, 32};
  rgb.dim_names = {"N", "", "", ""};
  Preprocess pp;
  pp.mean = {0.485f, 0.456f, 0.406f};
  pp.std = {0.229f, 0.224f, 0.225f};
  auto ds = open_dataset("fmnist:test:2", {rgb}, pp);
  at::Tensor x = ds->get(0, 2).inputs[0];
  ASSERT_EQ(x.sizes(), (at::IntArrayRef{2, 3, 32, 32}));
  // Same gray pixels in every channel, normalised per channel.
  at::Tensor px = x.select(1, 0) * 0.229f + 0.485f;
  at::Tensor px2 = x.select(1, 2) * 0.225f + 0.406f;
  EXPECT_LE((px - px2).abs().max().item<float>(), 1e-5f);
  Preprocess bad;
  bad.mean = {0.1f, 0.2f};
  EXPECT_THROW(open_dataset("fmnist:test:2", {rgb}, bad)->get(0, 1), Error);
  EXPECT_EQ(parse_float_list("1,2.5,-3", "t"), (std::vector<float>{1, 2.5f, -3}));
  EXPECT_THROW(parse_float_list("1,,2", "t"), Error);
}

// --- the CLI on the wild model: no labels, dynamic axes, outputs that are not class scores ---

TEST(WildCli, InfoReportsUnknownDimsAndTakesShapes) {
  CliResult r = run_cli({"info", wild(kModel), "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["layers"].size(), 4u);
  EXPECT_EQ(j["unknown_dims"], "'x' dims 2 (H), 3 (W)");
  EXPECT_TRUE(j["macs"].is_null());
  r = run_cli({"info", wild(kModel), "--input-shape", "x:1,3,48,320", "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["macs"].get<int64_t>(), 8 * 27 * 48 * 320);
  r = run_cli({"info", wild(kModel), "--data", wild("wild-a.npz"), "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["layers"][0]["macs"].get<int64_t>(), 8 * 27 * 24 * 40);
}

TEST(WildCli, EvalWithoutLabelsAgainstStoredOutputs) {
  TempDir d;
  CliResult r = run_cli({"eval", wild(kModel), "--data", wild("wild-a.npz"), "--reference", wild("wild-a.ref.npz"),
                         "--save-outputs", d.file("out.npz"), "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["top1"].is_null());
  EXPECT_EQ(j["metric"], "sqnr");
  ASSERT_EQ(j["fidelity"].size(), 2u);
  for (const auto& f : j["fidelity"]) EXPECT_LE(f["rel_err"].get<double>(), 1e-5) << f.dump();
  auto out = load_npz(d.file("out.npz"));
  EXPECT_EQ(out.at("feat").sizes(), (at::IntArrayRef{3, 8, 11, 19}));
  EXPECT_EQ(out.at("emb").sizes(), (at::IntArrayRef{3, 8}));
}

TEST(WildCli, QuantizePackRunWithoutLabels) {
  TempDir d;
  CliResult q = run_cli({"quantize", wild(kModel), "--calib", wild("wild-a.npz"), "--eval", wild("wild-b.npz"),
                         "--wbits", "8", "--abits", "8", "--pin-bits", "0", "-o", d.file("q.onnx"), "--pack",
                         d.file("q.mxq"), "--save-outputs", d.file("q.npz"), "--json", "-q"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  auto j = nlohmann::json::parse(q.out);
  EXPECT_TRUE(j["top1_quant"].is_null());
  EXPECT_EQ(j["metric"], "sqnr");
  ASSERT_EQ(j["fidelity"].size(), 2u);
  EXPECT_GT(j["fidelity"][0]["sqnr_db"].get<double>(), 25.0) << j["fidelity"].dump();
  EXPECT_GT(j["fidelity"][1]["cosine"].get<double>(), 0.99) << j["fidelity"].dump();
  EXPECT_EQ(j["layers"].size(), 4u);
  // The QDQ export runs (at a third size) and the packed model runs without labels.
  CliResult e = run_cli({"eval", d.file("q.onnx"), "--data", wild("wild-b.npz"), "--reference", wild(kModel),
                         "--json", "-q"});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_NEAR(nlohmann::json::parse(e.out)["fidelity"][0]["sqnr_db"].get<double>(),
              j["fidelity"][0]["sqnr_db"].get<double>(), 1e-6);
  CliResult r = run_cli({"run", d.file("q.mxq"), "--data", wild("wild-b.npz"), "--reference", wild(kModel), "--json",
                         "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto jr = nlohmann::json::parse(r.out);
  EXPECT_GT(jr["fidelity"][0]["sqnr_db"].get<double>(), 25.0) << jr.dump();
  // A sensitivity-table search on fidelity alone (no labels anywhere).
  CliResult s = run_cli({"quantize", wild(kModel), "--calib", wild("wild-a.npz"), "--search", "ip", "--budget-bits",
                         "5", "--pin-bits", "0", "--json", "-q"});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_LE(nlohmann::json::parse(s.out)["avg_wbits"].get<double>(), 5.0 + 1e-9);
}

}  // namespace
}  // namespace mixq::test
