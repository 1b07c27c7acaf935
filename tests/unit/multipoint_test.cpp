// Multipoint quantization (quant/multipoint*.{h,cpp}, quant/methods/multipoint.cpp, the packer's
// extra channels and the runtime's MultipointSum): the scalar point fit on hand-computed rows, the
// residual never growing as points are added, levels filled channel by channel, the method within
// its budget and lowering every output error it touches, the plan counting the points, the QDQ
// export equal to the simulation, and the packed runtime agreeing with the simulation on a plain
// conv net, a depthwise one and a transformer.
#include <ATen/ATen.h>

#include <cmath>

#include "api/quantize_job.h"
#include "exec/executor.h"
#include "pack/from_qmodel.h"
#include "quant/embed_quant.h"
#include "quant/multipoint.h"
#include "quant/multipoint_ref.h"
#include "quant/qdq.h"
#include "quant/quantize.h"
#include "runtime/runtime.h"
#include "rt_test_util.h"
#include "test_util.h"

namespace mixq::test {
namespace {

TEST(Multipoint, FitPointOnHandComputedRows) {
  // r = (1, -1, 0.4, 0) on a 3-bit grid, scales t / 3 for t in {1/4, 1/2, 3/4, 1}:
  //   a = 1/3: codes 3, -3, 1, 0 -> error (0.4 - 1/3)^2 = 0.00444 (the best);
  //   a = 1/4: 4 -> 3 (clamped), -4, 1.6 -> 2, 0 -> 0.0625 + 0.01; smaller scales clamp more.
  const float r[4] = {1.0f, -1.0f, 0.4f, 0.0f};
  float q[4];
  double err = 0;
  const float a = ref::fit_point_row(r, 4, ref::multipoint_grid(3, true), 4, q, &err);
  EXPECT_FLOAT_EQ(a, 1.0f / 3.0f);
  EXPECT_EQ(std::vector<float>(q, q + 4), (std::vector<float>{3, -3, 1, 0}));
  EXPECT_NEAR(err, (0.4 - 1.0 / 3.0) * (0.4 - 1.0 / 3.0), 1e-6);
  // Asymmetric grid 0..7: the same point around the zero point 4.
  const ref::PointGrid g = ref::multipoint_grid(3, false);
  EXPECT_EQ(g.zero, 4);
  ref::fit_point_row(r, 4, g, 4, q, &err);
  EXPECT_EQ(std::vector<float>(q, q + 4), (std::vector<float>{7, 1, 5, 4}));
  // A zero row: no point (scale 1, every code the zero point), error 0.
  const float zero[3] = {0, 0, 0};
  EXPECT_EQ(ref::fit_point_row(zero, 3, g, 16, q, &err), 1.0f);
  EXPECT_EQ(std::vector<float>(q, q + 3), (std::vector<float>{4, 4, 4}));
  EXPECT_EQ(err, 0.0);
}

TEST(Multipoint, ResidualNeverGrowsAndLevelsFillPerChannel) {
  at::manual_seed(3);
  const at::Tensor w = at::randn({6, 5, 3});  // a Gemm-like weight with channels on axis 1
  for (bool sym : {true, false}) {
    QScheme s;
    s.bits = 3;
    s.symmetric = sym;
    s.granularity = Granularity::kPerChannel;
    s.axis = 1;
    QuantizedWeight qw;
    qw.scheme = s;
    qw.params = weight_params(w, s, RangeOptions{});
    qw.codes = quantize(w, qw.params, s);
    qw.extra_axis = 1;
    at::Tensor res = channel_rows(w, 1) - channel_rows(dequantize_weight(qw), 1);
    double prev = res.pow(2).sum().item<double>();
    for (int step = 0; step < 3; ++step) {
      PointFit f = fit_points(res, s);
      // The fitted error is what the point leaves, and it never exceeds the residual's.
      const at::Tensor left = (res - point_rows(f, s)).to(at::kDouble).pow(2).sum(1);
      EXPECT_TRUE(at::allclose(left, f.err, 1e-5, 1e-9)) << step;
      EXPECT_TRUE((f.err <= res.to(at::kDouble).pow(2).sum(1) + 1e-12).all().item<bool>()) << step;
      // Points for channels 0 and 2 only in the first step, for all later.
      at::Tensor take = step == 0 ? at::tensor({1, 0, 1, 0, 0}).to(at::kBool) : at::ones({5}, at::kBool);
      add_points(qw, f, take);
      res = at::where(take.unsqueeze(1), res - point_rows(f, s), res);
      const double now = res.pow(2).sum().item<double>();
      EXPECT_LT(now, prev) << step;
      prev = now;
      // dequantize_weight adds the levels: the residual is exactly what is still missing.
      const at::Tensor miss = channel_rows(w, 1) - channel_rows(dequantize_weight(qw), 1);
      EXPECT_TRUE(at::allclose(miss, res, 1e-5, 1e-6)) << step;
    }
    EXPECT_EQ(qw.extra.size(), 3u);
    EXPECT_EQ(extra_point_count(qw), 2 + 5 + 5);
    EXPECT_EQ(extra_points_per_channel(qw), (std::vector<int64_t>{3, 2, 3, 2, 2}));
    // A channel without a point at a level holds the zero point there (value 0) and scale 1.
    const at::Tensor lvl2 = channel_rows(qw.extra[2].codes, 1);
    EXPECT_TRUE(at::all(lvl2[1] == static_cast<float>(multipoint_zero_point(s))).item<bool>());
    EXPECT_EQ(qw.extra[2].scale[1].item<float>(), 1.0f);
    EXPECT_FALSE(qw.extra[2].used[1].item<bool>());
  }
}

// A fixture at W3A8 through run_quantize with --method multipoint.
QuantizeResult quantize_multipoint(const std::string& name, double extra, int64_t samples = 64, bool grouped = false) {
  QuantizeJob job;
  job.model_path = fixture(name);
  job.calib = "fmnist:train:128";
  job.eval_float = false;
  job.method = "multipoint";
  job.search_opts.wbits = job.defaults.wbits = 3;
  job.defaults.abits = 8;
  job.recon.mp_extra = extra;
  job.recon.mp_samples = samples;
  job.recon.mp_grouped = grouped;
  job.qopts.progress = false;
  job.recon.progress = false;
  return run_quantize(job);
}

TEST(Multipoint, MethodStaysInBudgetLowersErrorsAndIsCounted) {
  QuantizeResult base = quantize_multipoint("fmnist-resnet", 0.0);
  QuantizeResult r = quantize_multipoint("fmnist-resnet", 0.1);
  const nlohmann::json& m = r.method_report;
  const int64_t budget = m["budget_points"].get<int64_t>();
  EXPECT_EQ(budget, std::llround(0.1 * m["eligible_channels"].get<double>()));
  EXPECT_GT(m["points"].get<int64_t>(), 0);
  EXPECT_LE(m["points"].get<int64_t>(), budget);
  EXPECT_EQ(base.method_report["points"].get<int64_t>(), 0);
  int64_t counted = 0, extra_params = 0;
  for (const auto& [layer, v] : m["layers"].items()) {
    EXPECT_LT(v["rel_error_after"].get<double>(), v["rel_error_before"].get<double>()) << layer;
    counted += v["points"].get<int64_t>();
  }
  EXPECT_EQ(counted, m["points"].get<int64_t>());
  for (const auto& L : r.plan.layers) extra_params += L.extra_params;
  // The plan counts every point: weights at the layer's bits plus a float32 scale and a zero point
  // (asymmetric weights), and the extra MACs.
  EXPECT_NEAR(double(r.plan.cost.size_bytes - base.plan.cost.size_bytes),
              (double(extra_params) * 3 + double(counted) * 40) / 8, 1.0);
  EXPECT_GT(r.plan.cost.bops, base.plan.cost.bops);
  EXPECT_GT(r.plan.cost.avg_wbits, base.plan.cost.avg_wbits);
  // The QDQ graph (the export, and the simulation) computes what dequantize_weight says.
  auto ds = open_dataset("fmnist:test:16", r.prepared.inputs, preprocess_from_metadata(r.prepared));
  const Batch b = ds->get(0, 16);
  Executor qdq(qdq_graph(r.qmodel));
  int dq_levels = 0;
  for (const auto& n : qdq.graph().nodes) dq_levels += n.name.find("_mp0_dq") != std::string::npos;
  EXPECT_EQ(dq_levels, static_cast<int>(m["layers"].size()));
  Graph fq = r.qmodel.graph;
  for (const auto& w : r.qmodel.weights) fq.initializers[w.weight] = dequantize_weight(w);
  Executor weights_only(fq);
  // (weights_only has no activation quantizers: compare the layers' weights through a model that
  // only quantizes weights on both sides instead.)
  QuantizedModel wq = r.qmodel;
  wq.activations.clear();
  Executor qdq_w(qdq_graph(wq));
  EXPECT_TRUE(at::equal(qdq_w.run(b.inputs).at(0), weights_only.run(b.inputs).at(0)));
  // More points, better weights: the multipoint model's outputs are closer to the float model's.
  Executor fl(r.prepared);
  QuantizedModel bw = base.qmodel;
  bw.activations.clear();
  Executor base_w(qdq_graph(bw));
  const at::Tensor ref = fl.run(b.inputs).at(0);
  EXPECT_LT((weights_only.run(b.inputs).at(0) - ref).pow(2).sum().item<double>(),
            (base_w.run(b.inputs).at(0) - ref).pow(2).sum().item<double>());
}

// Packed with extra output channels and a MultipointSum: the runtime agrees with the simulation.
void check_runtime(const std::string& name, bool grouped = false) {
  QuantizeResult r = quantize_multipoint(name, 0.2, 32, grouped);
  ASSERT_GT(r.method_report["points"].get<int64_t>(), 0) << name;
  TempDir d;
  const std::string path = d.file(name + ".mxq");
  pack::PackedModel pm = pack_quantized_model(r.qmodel);
  int sums = 0;
  for (const auto& n : pm.nodes) sums += n.op == "MultipointSum";
  EXPECT_EQ(sums, static_cast<int>(r.method_report["layers"].size())) << name;
  pack::save_mxq(pm, path);
  auto ds = open_dataset("fmnist:test:64", r.prepared.inputs, preprocess_from_metadata(r.prepared));
  Batch b = ds->get(0, 64);
  Executor sim(qdq_graph(r.qmodel));
  const at::Tensor ref = sim.run(b.inputs).at(0).contiguous();
  const rt::Tensor x = to_rt(b.inputs.at(0));
  rt::Model model = rt::Model::load(path);
  const rt::Tensor y = model.run({x}).at(0);
  ASSERT_EQ(static_cast<int64_t>(y.f.size()), ref.numel()) << name;
  const ScoreAgreement sa = compare_scores(ref, y.f);
  EXPECT_LT(sa.maxdiff, 0.05 * (1 + sa.maxabs)) << name;
  EXPECT_GE(sa.agree, 63) << name;
  // Unfused (every value NCHW float, no fused activation) gives the same bits; the ViT's fused
  // GELU and attention round differently from their chains (own kernels), so there within rounding.
  rt::ModelOptions plain;
  plain.fuse = false;
  const std::vector<float> u = rt::Model::load(path, plain).run({x}).at(0).f;
  if (name != "fmnist-vit") {
    EXPECT_EQ(u, y.f) << name;
  } else {
    const ScoreAgreement su = compare_scores(ref, u);
    EXPECT_LT(su.maxdiff, 0.05 * (1 + su.maxabs)) << name << " unfused";
    EXPECT_GE(su.agree, 63) << name << " unfused";
    const ScoreAgreement sf = compare_scores(at::from_blob(const_cast<float*>(u.data()), ref.sizes()).clone(), y.f);
    EXPECT_LT(sf.maxdiff, 0.05 * (1 + sf.maxabs)) << name << " fused vs unfused";
  }
}

TEST(Multipoint, RuntimeMatchesSimulationResnet) { check_runtime("fmnist-resnet"); }
TEST(Multipoint, RuntimeMatchesSimulationDepthwise) { check_runtime("fmnist-mobilenetv2", true); }
TEST(Multipoint, GroupedConvolutionsOnlyWhenAsked) {
  QuantizeResult r = quantize_multipoint("fmnist-mobilenetv2", 0.1, 32);
  int grouped_skipped = 0;
  for (const auto& [layer, why] : r.method_report["skipped"].items())
    grouped_skipped += why.get<std::string>().find("grouped convolution") == 0;
  EXPECT_GT(grouped_skipped, 0);
  for (const auto& [layer, v] : r.method_report["layers"].items())
    EXPECT_FALSE(r.method_report["skipped"].contains(layer)) << layer;
}
TEST(Multipoint, RuntimeMatchesSimulationVit) { check_runtime("fmnist-vit"); }

// MultipointSum on hand-computed values: output channel c = the sum of the input channels whose
// dest is c, in input order; -1 drops a channel; a following Relu is fused into it (same values).
TEST(Multipoint, MultipointSumAddsTheExtraChannels) {
  for (bool relu : {false, true}) {
    pack::PackedModel m;
    m.inputs.push_back({"x", pack::ElemType::kFloat32, {-1, 4, 1, 2}});
    m.outputs.push_back({"y", pack::ElemType::kFloat32, {-1, 2, 1, 2}});
    pack::Node n;
    n.name = "sum";
    n.op = "MultipointSum";
    n.inputs = {"x"};
    n.outputs = {relu ? "s" : "y"};
    n.attrs["axis"].i = 1;
    n.attrs["dest"].type = pack::Attr::kInts;
    n.attrs["dest"].ints = {0, 1, 0, -1};
    m.nodes.push_back(n);
    if (relu) {
      pack::Node r;
      r.name = "relu";
      r.op = "Relu";
      r.inputs = {"s"};
      r.outputs = {"y"};
      m.nodes.push_back(r);
    }
    rt::Model model(m);
    rt::Tensor x;
    x.shape = {1, 4, 1, 2};
    x.f = {1.5f, -2.0f, 0.25f, 3.0f, -4.0f, 0.5f, 100.0f, 100.0f};
    const rt::Tensor y = model.run({x}).at(0);
    EXPECT_EQ(y.shape, (std::vector<int64_t>{1, 2, 1, 2}));
    const std::vector<float> want = relu ? std::vector<float>{0.0f, 0.0f, 0.25f, 3.0f}
                                         : std::vector<float>{1.5f - 4.0f, -2.0f + 0.5f, 0.25f, 3.0f};
    EXPECT_EQ(y.f, want) << (relu ? "with Relu" : "plain");
    if (relu) {
      EXPECT_EQ(model.forms().fused_acts, 1);
    }
  }
}

TEST(Multipoint, CliReportsPointsAndRefusesBadOptions) {
  TempDir tmp;
  CliResult r = run_cli({"quantize", fixture("fmnist-mlp"), "--method", "multipoint", "--wbits", "3", "--mp-extra",
                         "0.05", "--mp-samples", "32", "--calib", "fmnist:train:64", "-o", tmp.file("q.onnx"),
                         "--pack", tmp.file("q.mxq"), "--report", tmp.file("r.json"), "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json rep = nlohmann::json::parse(read_file(tmp.file("r.json")));
  EXPECT_EQ(rep["method"], "multipoint");
  EXPECT_GT(rep["method_report"]["points"].get<int64_t>(), 0);
  EXPECT_TRUE(rep["method_report"].contains("seconds"));
  CliResult bad = run_cli({"quantize", fixture("fmnist-mlp"), "--method", "multipoint", "--mp-extra", "-1", "--calib",
                           "fmnist:train:16", "-q"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--mp-extra"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace mixq::test
