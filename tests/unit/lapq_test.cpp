// LAPQ (quant/methods/lapq*.cpp): the Lp range search at p = 2 is the MSE search, the quadratic
// fit finds a parabola's vertex, the joint search never ends above its start (on known functions
// and on a fixture), and `mixq quantize --method lapq` runs end to end and exports QDQ.
#include <ATen/ATen.h>

#include <cmath>
#include <limits>

#include "exec/shapes.h"
#include "graph/fold_bn.h"
#include "onnx/import.h"
#include "quant/methods/lapq_search.h"
#include "quant/methods/method.h"
#include "quant/quantize.h"
#include "quant/quantizer.h"
#include "test_util.h"

namespace mixq::test {
namespace {

// The shrink factor (1 - 0.01 i) of BRECQ's grid whose range has the lowest squared error,
// measured in double on every group separately: the MSE search by brute force.
std::vector<double> brute_mse_factor(const at::Tensor& w, const QScheme& s) {
  at::Tensor mn0, mx0;
  weight_minmax(w, s, mn0, mx0);
  const int64_t groups = mn0.numel();
  std::vector<double> best(groups, std::numeric_limits<double>::infinity()), arg(groups, 0);
  for (int i = 0; i < 80; ++i) {
    const double f = 1.0 - 0.01 * i;
    QParams p = params_from_range(mn0 * f, mx0 * f, s);
    at::Tensor d = (fake_quantize(w, p, s) - w).to(at::kDouble).pow(2);
    at::Tensor err = s.granularity == Granularity::kPerTensor ? d.sum().reshape({1}) : d.reshape({groups, -1}).sum(1);
    for (int64_t g = 0; g < groups; ++g)
      if (err[g].item<double>() < best[g]) best[g] = err[g].item<double>(), arg[g] = f;
  }
  return arg;
}

TEST(Lapq, LpClippingAtP2IsTheMseSearch) {
  at::manual_seed(7);
  at::Tensor w = at::randn({13, 37});  // odd sizes; per channel along axis 0
  for (Granularity g : {Granularity::kPerTensor, Granularity::kPerChannel}) {
    for (int bits : {2, 3, 4}) {
      QScheme s;
      s.bits = bits;
      s.granularity = g;
      RangeOptions ro;
      ro.method = RangeMethod::kMse;
      ro.lp = 2.0;
      at::Tensor mn, mx, mn0, mx0;
      weight_range(w, s, ro, mn, mx);
      weight_minmax(w, s, mn0, mx0);
      const std::vector<double> f = brute_mse_factor(w, s);
      at::Tensor fe = at::tensor(f, at::kDouble).to(at::kFloat).reshape(mn.sizes());
      EXPECT_TRUE(at::allclose(mx, mx0 * fe, 1e-6, 1e-7)) << granularity_name(g) << " " << bits << " bits";
      EXPECT_TRUE(at::allclose(mn, mn0 * fe, 1e-6, 1e-7)) << granularity_name(g) << " " << bits << " bits";
      // And weight_params is exactly that range's parameters.
      QParams p = weight_params(w, s, ro), q = params_from_range(mn, mx, s);
      EXPECT_TRUE(at::equal(p.scale, q.scale) && at::equal(p.zero_point, q.zero_point));
    }
  }
}

TEST(Lapq, QuadraticFitRecoversTheVertex) {
  std::vector<double> p, l;
  for (int i = 0; i < 10; ++i) {
    p.push_back(2.0 + 2.0 * i / 9);
    l.push_back(0.7 * (p.back() - 2.93) * (p.back() - 2.93) + 1.3);
  }
  QuadraticFit q = fit_quadratic_min(p, l, 2.0, 4.0);
  EXPECT_TRUE(q.from_fit);
  EXPECT_NEAR(q.p_star, 2.93, 1e-9);
  EXPECT_NEAR(q.a, 0.7, 1e-9);
  // A vertex outside [2, 4] is clamped.
  for (size_t i = 0; i < p.size(); ++i) l[i] = (p[i] - 5) * (p[i] - 5);
  EXPECT_DOUBLE_EQ(fit_quadratic_min(p, l, 2.0, 4.0).p_star, 4.0);
  // Concave: the best grid point, not the fit.
  for (size_t i = 0; i < p.size(); ++i) l[i] = -(p[i] - 3.1) * (p[i] - 3.1);
  q = fit_quadratic_min(p, l, 2.0, 4.0);
  EXPECT_FALSE(q.from_fit);
  EXPECT_DOUBLE_EQ(q.p_star, 2.0);
  // A diverged (NaN) point is left out of the fit.
  for (size_t i = 0; i < p.size(); ++i) l[i] = (p[i] - 3.3) * (p[i] - 3.3);
  l[9] = std::nan("");
  EXPECT_NEAR(fit_quadratic_min(p, l, 2.0, 4.0).p_star, 3.3, 1e-9);
}

TEST(Lapq, JointSearchNeverEndsAboveItsStart) {
  for (const std::string& opt : joint_optimizer_names()) {
    JointOptions jo;
    jo.optimizer = opt;
    jo.max_evals = 200;
    // A shifted bowl: it improves, within the budget.
    auto bowl = [](const std::vector<double>& x) {
      double s = 0;
      for (size_t i = 0; i < x.size(); ++i) s += (x[i] - 0.1 * (i + 1)) * (x[i] - 0.1 * (i + 1));
      return s;
    };
    JointResult r = minimize_joint(bowl, std::vector<double>(4, 0.0), jo);
    EXPECT_LT(r.loss_best, 0.1 * r.loss_start) << opt;
    EXPECT_DOUBLE_EQ(r.loss_best, bowl(r.x)) << opt;
    EXPECT_LE(r.evals, 201) << opt;
    // Started at the minimum of a rugged function: it may wander, but returns the start.
    auto rugged = [](const std::vector<double>& x) {
      double s = 0;
      for (double v : x) s += std::fabs(v) + 0.3 * std::sin(40 * v) * std::sin(40 * v);
      return s;
    };
    r = minimize_joint(rugged, std::vector<double>(3, 0.0), jo);
    EXPECT_EQ(r.loss_best, r.loss_start) << opt;
    EXPECT_EQ(r.x, std::vector<double>(3, 0.0)) << opt;
  }
  // Sweeps: the budget is sweeps x 4 (n + 1) evaluations, one best loss reported per sweep.
  JointOptions jo;
  jo.sweeps = 2;
  JointResult r = minimize_joint([](const std::vector<double>& x) { return std::cos(x[0]) + x[1] * x[1]; },
                                 {0.0, 0.5}, jo);
  EXPECT_LE(r.evals, 1 + 2 * 12);
  EXPECT_FALSE(r.sweep_best.empty());
  EXPECT_LE(r.sweep_best.back(), r.loss_start);
  jo.optimizer = "powell";
  EXPECT_THROW(minimize_joint([](const std::vector<double>&) { return 0.0; }, {0.0}, jo), Error);
}

TEST(Lapq, FixtureLossNeverRisesWithAndWithoutLabels) {
  Graph g = load_onnx(fixture("fmnist-resnet"));
  Graph prepared = g;
  std::vector<FoldedBn> folded;
  fold_batchnorm(prepared, &folded);
  auto layers = find_layers(prepared);
  PlanDefaults d;
  d.wbits = 3;
  d.abits = 4;
  d.granularity = Granularity::kPerTensor;
  d.weight_range = d.input_range = RangeMethod::kMse;
  QuantPlan plan = make_plan(prepared, layers, d);
  auto calib = open_dataset("fmnist:train:48", g.inputs, preprocess_from_metadata(g));
  QuantizeOptions qo;
  qo.progress = false;
  QuantizedModel qm = quantize_model(prepared, plan, *calib, qo);
  ReconOptions o;
  o.progress = false;
  o.calib_batch = 32;  // two batches, the last one short
  o.lapq_p_points = 4;
  o.lapq_evals = 30;
  MethodContext ctx{prepared, plan, *calib, folded, o, qm};
  refine_lapq(ctx);
  const nlohmann::json& r = ctx.report;
  ASSERT_EQ(r["p_grid"].size(), 4u);
  EXPECT_GE(r["p_star"].get<double>(), 2.0);
  EXPECT_LE(r["p_star"].get<double>(), 4.0);
  EXPECT_LE(r["loss_final"].get<double>(), r["loss_init"].get<double>());
  EXPECT_LE(r["joint"]["evals"].get<int64_t>(), 31);
  EXPECT_GT(r["joint"]["dims"].get<int64_t>(), 0);
  // What is written back is a valid quantization: codes on the grid, positive finite scales.
  for (const auto& w : qm.weights) {
    EXPECT_TRUE(at::equal(w.codes, w.codes.round())) << w.node;
    EXPECT_GE(w.codes.min().item<float>(), static_cast<float>(w.scheme.qmin())) << w.node;
    EXPECT_LE(w.codes.max().item<float>(), static_cast<float>(w.scheme.qmax())) << w.node;
  }
  for (const auto& a : qm.activations) {
    const float s = a.params.scale.item<float>();
    EXPECT_TRUE(std::isfinite(s) && s > 0) << a.tensor;
  }
  // Without labels the loss is the fidelity to the float outputs (KL of the class scores).
  auto unlabelled = memory_dataset(calib->get(0, 48).inputs, at::Tensor(), "fmnist:train:48 without labels");
  QuantizedModel qm2 = quantize_model(prepared, plan, *unlabelled, qo);
  MethodContext ctx2{prepared, plan, *unlabelled, folded, o, qm2};
  refine_lapq(ctx2);
  EXPECT_EQ(ctx2.report["loss"], "fidelity to the float outputs");
  EXPECT_GE(ctx2.report["loss_init"].get<double>(), 0.0);
  EXPECT_LE(ctx2.report["loss_final"].get<double>(), ctx2.report["loss_init"].get<double>());
}

TEST(Lapq, CliRunsEndToEndAndExportsQdq) {
  TempDir tmp;
  CliResult r = run_cli({"quantize", fixture("fmnist-mobilenetv2"), "--method", "lapq", "--wbits", "4", "--abits", "4",
                         "--granularity", "per_channel", "--calib", "fmnist:train:40", "--lapq-samples", "40",
                         "--lapq-evals", "12", "--lapq-bias-corr", "-o", tmp.file("q.onnx"), "--report",
                         tmp.file("r.json"), "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Graph q = load_onnx(tmp.file("q.onnx"));
  int qdq = 0;
  for (const auto& n : q.nodes) qdq += n.op_type == "QuantizeLinear";
  EXPECT_GT(qdq, 0);
  nlohmann::json rep = nlohmann::json::parse(read_file(tmp.file("r.json")));
  const nlohmann::json& m = rep["method_report"];
  EXPECT_EQ(rep["method"], "lapq");
  EXPECT_EQ(m["p_grid"].size(), 10u);
  EXPECT_TRUE(m.contains("p_star") && m.contains("loss_init") && m.contains("loss_final") && m.contains("seconds"));
  EXPECT_LE(m["loss_final"].get<double>(), m["loss_init"].get<double>());
  EXPECT_GT(m["bias_corr"]["layers"].get<int>(), 0);  // grouped (depthwise) convs and the Gemm
  EXPECT_GT(m["evaluations"].get<int64_t>(), 10);
}

}  // namespace
}  // namespace mixq::test
