// Reconstruction methods (quant/methods): AdaRound's rounding variables, the block partitioner,
// cached unit data, gradient routing, BN re-estimation, bias tuning and reproducibility.
#include <ATen/ATen.h>

#include <map>
#include <set>

#include "api/quantize_job.h"
#include "exec/executor.h"
#include "exec/shapes.h"
#include "graph/blocks.h"
#include "graph/fold_bn.h"
#include "graph_util.h"
#include "onnx/import.h"
#include "quant/methods/method.h"
#include "quant/methods/recon_loop.h"
#include "quant/methods/soft_quant.h"
#include "quant/qdq.h"
#include "quant/quantize.h"
#include "quant/quantizer.h"
#include "test_util.h"

namespace mixq::test {
namespace {

QScheme scheme(int bits, bool sym, Granularity g, int64_t group = 0) {
  QScheme s;
  s.bits = bits;
  s.symmetric = sym;
  s.granularity = g;
  s.group_size = group;
  return s;
}

TEST(SoftRounding, InitReproducesNearestRounding) {
  at::manual_seed(3);
  for (const QScheme& s : {scheme(4, false, Granularity::kPerChannel), scheme(3, true, Granularity::kPerGroup, 5),
                           scheme(2, false, Granularity::kPerTensor), scheme(8, true, Granularity::kPerChannel)}) {
    at::Tensor w = at::randn({7, 3, 3, 3});
    QParams p = weight_params(w, s, {});
    SoftRounding r(w, p, s);
    at::Tensor nearest = quantize(w, p, s);
    at::Tensor hard = r.hard_codes();
    // Half-way values round half to even in quantize() and half up here; they are measure zero.
    at::Tensor t = w / broadcast_param(p.scale, s, w.sizes());
    at::Tensor tie = ((t - at::floor(t)) - 0.5).abs() < 1e-6;
    EXPECT_TRUE(at::equal(hard.masked_fill(tie, 0), nearest.masked_fill(tie, 0))) << s.str();
    // Soft weights at initialisation equal the float weights wherever they are not clipped.
    // (the zero point is rounded, so the grid's ends may clip a value by up to half a step).
    at::Tensor dq = r.soft_weight();
    at::Tensor inside = (t + broadcast_param(p.zero_point, s, w.sizes()) >= s.qmin()) &
                        (t + broadcast_param(p.zero_point, s, w.sizes()) <= s.qmax());
    EXPECT_GT(inside.sum().item<int64_t>(), w.numel() / 2);
    EXPECT_LT((dq - w).masked_fill(~inside, 0).abs().max().item<double>(), 1e-5 * (1 + w.abs().max().item<double>()))
        << s.str();
  }
}

TEST(SoftRounding, HardCodesStayWithinOneStepOfFloor) {
  at::manual_seed(4);
  QScheme s = scheme(3, false, Granularity::kPerChannel);
  at::Tensor w = at::randn({5, 11});
  QParams p = weight_params(w, s, {});
  SoftRounding r(w, p, s);
  {
    at::NoGradGuard ng;
    r.v().copy_(at::randn_like(r.v()) * 50);  // wherever optimisation may have driven V
  }
  at::Tensor z = broadcast_param(p.zero_point, s, w.sizes());
  at::Tensor lo = at::clamp(r.floor_codes() + z, s.qmin(), s.qmax());
  at::Tensor hi = at::clamp(r.floor_codes() + z + 1, s.qmin(), s.qmax());
  at::Tensor c = r.hard_codes();
  EXPECT_TRUE(((c == lo) | (c == hi)).all().item<bool>());
  // The regulariser vanishes when every h is exactly 0 or 1 and is positive otherwise.
  {
    at::NoGradGuard ng;
    r.v().fill_(100);
  }
  EXPECT_NEAR(r.regularizer(2.0).item<double>(), 0.0, 1e-9);
  {
    at::NoGradGuard ng;
    r.v().fill_(0);
  }
  EXPECT_NEAR(r.regularizer(2.0).item<double>(), 55.0, 1e-3);  // 1 - |2 * 0.5 - 1|^2 = 1 each
}

TEST(Blocks, FixturesPartitionIntoTheirBlocks) {
  auto kinds_of = [](const std::string& name) {
    Graph g = load_onnx(fixture(name));
    fold_batchnorm(g);
    auto layers = find_layers(g);
    auto units = partition_units(g, layers, {layers.front().node, layers.back().node});
    std::vector<std::string> kinds;
    std::multiset<std::string> seen;
    for (const auto& u : units) {
      kinds.push_back(unit_kind_name(u.kind));
      seen.insert(u.layers.begin(), u.layers.end());
      EXPECT_FALSE(u.inputs.empty()) << name << " " << u.name;
      EXPECT_FALSE(u.outputs.empty()) << name << " " << u.name;
    }
    for (const auto& L : layers) EXPECT_EQ(seen.count(L.node), 1u) << name << " " << L.node;
    return kinds;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(kinds_of("fmnist-resnet"), (V{"layer", "residual", "residual", "residual", "residual", "layer"}));
  V mbv2 = {"layer"};
  for (int i = 0; i < 6; ++i) mbv2.push_back("inverted_residual");
  mbv2.push_back("layer");
  mbv2.push_back("layer");
  EXPECT_EQ(kinds_of("fmnist-mobilenetv2"), mbv2);
  EXPECT_EQ(kinds_of("fmnist-vit"), (V{"layer", "transformer", "transformer", "transformer", "layer"}));
  EXPECT_EQ(kinds_of("fmnist-mlp"), (V{"layer", "layer", "layer"}));
}

TEST(Blocks, ResidualBlockHoldsShortcutAddAndRelu) {
  Graph g = load_onnx(fixture("fmnist-resnet"));
  fold_batchnorm(g);
  auto layers = find_layers(g);
  auto units = partition_units(g, layers);
  const Unit& b = units[2];  // stage-2 block with a 1x1 shortcut conv
  EXPECT_EQ(b.layers.size(), 3u);
  std::multiset<std::string> ops;
  for (int i : b.nodes) ops.insert(g.nodes[static_cast<size_t>(i)].op_type);
  EXPECT_EQ(ops.count("Add"), 1u);
  EXPECT_EQ(ops.count("Relu"), 2u);
  ASSERT_EQ(b.inputs.size(), 1u);
  ASSERT_EQ(b.outputs.size(), 1u);
  // Layer units carry the activation after the layer.
  auto lu = layer_units(g, layers);
  ASSERT_EQ(lu.size(), layers.size());
  EXPECT_EQ(lu[0].nodes.size(), 2u);  // stem conv + ReLU
  EXPECT_EQ(lu.back().nodes.size(), 1u);
}

// A quantized ResNet fixture with its plan, on a small calibration set.
struct Fixture {
  Graph prepared;
  std::vector<FoldedBn> folded;
  QuantPlan plan;
  std::unique_ptr<Dataset> calib;
  QuantizedModel qm;
};

std::unique_ptr<Fixture> quantized_resnet(int wbits, int abits, int64_t n_calib) {
  auto f = std::make_unique<Fixture>();
  Graph g = load_onnx(fixture("fmnist-resnet"));
  f->prepared = g;
  fold_batchnorm(f->prepared, &f->folded);
  auto layers = find_layers(f->prepared);
  {
    Executor ex(f->prepared);
    annotate_macs(ex, layers);
  }
  PlanDefaults d;
  d.wbits = wbits;
  d.abits = abits;
  d.weight_range = d.input_range = RangeMethod::kMse;
  f->plan = make_plan(f->prepared, layers, d);
  f->plan.method = "brecq";
  f->calib = open_dataset("fmnist:train:" + std::to_string(n_calib), g.inputs, preprocess_from_metadata(g));
  QuantizeOptions qo;
  qo.progress = false;
  f->qm = quantize_model(f->prepared, f->plan, *f->calib, qo);
  return f;
}

TEST(Recon, CachedInputsEqualExecutorValues) {
  auto f = quantized_resnet(4, 8, 48);
  ReconOptions o;
  o.progress = false;
  o.calib_batch = 20;  // several batches, the last one short
  MethodContext ctx{f->prepared, f->plan, *f->calib, f->folded, o, f->qm};
  ReconModel rm(f->qm);
  auto layers = find_layers(f->prepared);
  auto units = partition_units(f->prepared, layers);
  CacheBudget budget;
  UnitCache c = cache_unit(rm, units[3], ctx, budget, /*fisher=*/true);
  ASSERT_EQ(c.rows(), 48);
  // The same values from a plain executor over the weight-quantized graph, whole batch at once.
  Executor ex(with_dequantized_weights(f->qm));
  auto all = ex.run({{f->prepared.inputs[0].name, f->calib->get(0, 48).inputs[0]}}, {units[3].inputs[0]});
  EXPECT_TRUE(at::allclose(c.in[0].slice(0, 48), all.at(units[3].inputs[0]), 1e-5, 1e-5));
  Executor fx(f->prepared);
  auto tgt = fx.run({{f->prepared.inputs[0].name, f->calib->get(0, 48).inputs[0]}}, {units[3].outputs[0]});
  EXPECT_TRUE(at::allclose(c.out[0].slice(0, 48), tgt.at(units[3].outputs[0]), 1e-5, 1e-5));
  // Fisher weights: non-negative, normalised to mean 1.
  ASSERT_EQ(c.fisher.size(), 1u);
  at::Tensor fw = c.fisher[0].slice(0, 48) * c.fisher_scale;
  EXPECT_GE(fw.min().item<double>(), 0.0);
  EXPECT_NEAR(fw.mean().item<double>(), 1.0, 1e-3);
}

TEST(Recon, GradientsReachOnlyTheUnitsRoundingVariablesAndLearnedSteps) {
  auto f = quantized_resnet(4, 4, 32);
  ReconOptions o;
  o.progress = false;
  MethodContext ctx{f->prepared, f->plan, *f->calib, f->folded, o, f->qm};
  ReconModel rm(f->qm);
  auto layers = find_layers(f->prepared);
  auto units = partition_units(f->prepared, layers);
  const Unit& u = units[2];
  CacheBudget budget;
  UnitCache c = cache_unit(rm, u, ctx, budget, false);
  std::vector<SoftRounding> r;
  for (const auto& l : u.layers) {
    auto& w = rm.weight(l);
    r.emplace_back(f->qm.graph.initializers.at(w.weight), w.params, w.scheme);
    rm.set_weight(l, r.back().soft_weight().view(f->qm.graph.initializers.at(w.weight).sizes()));
  }
  // One learned activation step inside the unit, one enabled but fixed one outside it.
  ActQuant* inside = rm.act_of_layer(u.layers[0]);
  ActQuant* outside = rm.act_of_layer(units[4].layers[0]);
  ASSERT_TRUE(inside && outside);
  inside->enabled = outside->enabled = true;
  inside->scale = inside->scale.detach().clone().set_requires_grad(true);
  rm.quant().set_grad_enabled(true);
  at::Tensor loss = unit_loss(rm, u, c, at::arange(0, 16, at::kLong));
  loss.backward();
  rm.quant().set_grad_enabled(false);
  for (auto& x : r) {
    ASSERT_TRUE(x.v().grad().defined());
    EXPECT_GT(x.v().grad().abs().sum().item<double>(), 0.0);
  }
  ASSERT_TRUE(inside->scale.grad().defined());
  EXPECT_NE(inside->scale.grad().item<double>(), 0.0);
  EXPECT_FALSE(outside->scale.requires_grad());
  for (const auto& kv : f->qm.graph.initializers) EXPECT_FALSE(kv.second.requires_grad()) << kv.first;
  for (const auto& w : f->qm.weights) EXPECT_FALSE(w.codes.requires_grad());
}

TEST(Recon, WhatIsOptimisedIsWhatIsExported) {
  // The training graph with hard weights and every activation quantizer on computes what the QDQ
  // graph (simulation and export) computes.
  auto f = quantized_resnet(3, 4, 16);
  ReconModel rm(f->qm);
  for (ActQuant* a : rm.acts()) a->enabled = true;
  at::Tensor x = f->calib->get(0, 16).inputs[0];
  const std::string in = f->prepared.inputs[0].name, out = f->prepared.outputs[0].name;
  at::Tensor a = rm.quant().run({{in, x}}, {out}).at(out);
  Executor qdq(qdq_graph(f->qm));
  at::Tensor b = qdq.run({x})[0];
  EXPECT_TRUE(at::allclose(a, b, 1e-4, 1e-4)) << (a - b).abs().max();
}

TEST(Recon, BrecqImprovesEveryBlockAndIsReproducible) {
  auto run = [](uint64_t seed) {
    auto f = quantized_resnet(2, 8, 64);
    ReconOptions o;
    o.progress = false;
    o.scale_iters(60);
    o.learn_act = false;
    o.seed = seed;
    MethodContext ctx{f->prepared, f->plan, *f->calib, f->folded, o, f->qm};
    refine_brecq(ctx);
    for (const auto& u : ctx.report["units"]) {
      EXPECT_LT(u["loss_learned"].get<double>(), u["loss_nearest"].get<double>()) << u["unit"];
      EXPECT_EQ(u["iters"].get<int64_t>(), 60);
    }
    EXPECT_EQ(ctx.report["units"].size(), 4u);
    std::vector<at::Tensor> codes;
    for (const auto& w : f->qm.weights) {
      codes.push_back(w.codes.clone());
      EXPECT_GE(w.codes.min().item<double>(), w.scheme.qmin());
      EXPECT_LE(w.codes.max().item<double>(), w.scheme.qmax());
    }
    return codes;
  };
  auto a = run(5), b = run(5);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i], b[i])) << i;
}

TEST(Recon, PinnedLayersAreReconstructedOnlyWithReconPinned) {
  // BRECQ's released code reconstructs the 8-bit first and last layers too (--recon-pinned);
  // METHODS.md's default leaves them at nearest rounding, steps as calibrated.
  auto run = [](bool recon_pinned) {
    auto f = quantized_resnet(2, 4, 64);
    std::set<std::string> pinned;
    for (const auto& L : f->plan.layers)
      if (L.pinned) pinned.insert(L.name);
    EXPECT_EQ(pinned.size(), 2u);
    std::map<std::string, at::Tensor> before;
    for (const auto& w : f->qm.weights)
      if (pinned.count(w.node)) before[w.node] = w.codes.clone();
    ReconOptions o;
    o.progress = false;
    o.scale_iters(60);
    o.recon_pinned = recon_pinned;
    o.seed = 1;
    MethodContext ctx{f->prepared, f->plan, *f->calib, f->folded, o, f->qm};
    refine_brecq(ctx);
    std::set<std::string> reconstructed, stepped;
    for (const auto& u : ctx.report["units"])
      for (const auto& l : u["layers"]) reconstructed.insert(l.get<std::string>());
    for (const auto& u : ctx.report["activation_units"])
      for (const auto& a : u["activations"]) stepped.insert(a.get<std::string>());
    int changed = 0;
    for (const auto& w : f->qm.weights)
      if (pinned.count(w.node)) changed += !at::equal(before.at(w.node), w.codes);
    for (const auto& name : pinned) EXPECT_EQ(reconstructed.count(name), recon_pinned ? 1u : 0u) << name;
    // The first layer reads the model input: a learned step for it only with --recon-pinned.
    EXPECT_EQ(stepped.count(f->prepared.inputs[0].name), recon_pinned ? 1u : 0u);
    return changed;
  };
  EXPECT_EQ(run(false), 0);
  EXPECT_GT(run(true), 0);
}

TEST(TensorStore, SpillsPastTheBudgetAndReadsBackTheSameRows) {
  at::manual_seed(1);
  at::Tensor data = at::randn({37, 3, 5});
  CacheBudget mem, tiny;
  tiny.limit_bytes = 100;
  TensorStore a(&mem), b(&tiny);
  for (int64_t i = 0; i < 37; i += 10) {
    a.append(data.slice(0, i, std::min<int64_t>(37, i + 10)));
    b.append(data.slice(0, i, std::min<int64_t>(37, i + 10)));
  }
  a.finish();
  b.finish();
  EXPECT_FALSE(a.spilled());
  EXPECT_TRUE(b.spilled());
  EXPECT_EQ(mem.used_bytes, 37 * 15 * 4);
  EXPECT_EQ(tiny.used_bytes, 0);
  at::Tensor idx = at::tensor({36, 0, 17, 17, 5}, at::kLong);
  EXPECT_TRUE(at::equal(a.gather(idx), data.index_select(0, idx)));
  EXPECT_TRUE(at::equal(b.gather(idx), data.index_select(0, idx)));
}

// In-memory dataset for synthetic graphs.
class TensorDataset : public Dataset {
 public:
  explicit TensorDataset(at::Tensor x) : x_(std::move(x)) {}
  int64_t size() const override { return x_.size(0); }
  bool has_labels() const override { return false; }
  Batch get(int64_t b, int64_t e) const override { return {{x_.slice(0, b, e)}, {}}; }
  std::string describe() const override { return "tensor"; }

 private:
  at::Tensor x_;
};

TEST(BnReestimate, RestoresTheStatisticsTheBatchNormPromises) {
  at::manual_seed(2);
  Graph g = new_graph("bn.onnx");
  g.inputs = {float_value("x", {-1, 3, 8, 8})};
  g.outputs = {float_value("out")};
  g.initializers["w"] = at::randn({4, 3, 3, 3});
  g.initializers["gamma"] = at::rand({4}) + 0.5;
  g.initializers["beta"] = at::randn({4});
  // Statistics that do not match the data (as after quantization shifts a layer's output).
  g.initializers["mean"] = at::randn({4}) * 3;
  g.initializers["var"] = at::rand({4}) * 10 + 5;
  g.nodes.push_back(make_node("conv", "Conv", {"x", "w"}, {"y"}, {{"pads", ints_attr({1, 1, 1, 1})}}));
  g.nodes.push_back(make_node("bn", "BatchNormalization", {"y", "gamma", "beta", "mean", "var"}, {"out"}));
  Graph prepared = g;
  std::vector<FoldedBn> folded;
  ASSERT_EQ(fold_batchnorm(prepared, &folded), 1);
  auto layers = find_layers(prepared);
  {
    Executor ex(prepared);
    annotate_macs(ex, layers);
  }
  PlanDefaults d;
  d.pin_bits = 0;
  d.wbits = 6;
  QuantPlan plan = make_plan(prepared, layers, d);
  TensorDataset data(at::randn({64, 3, 8, 8}) + 0.5);
  QuantizeOptions qo;
  qo.progress = false;
  QuantizedModel qm = quantize_model(prepared, plan, data, qo);
  ReconOptions o;
  o.progress = false;
  MethodContext ctx{prepared, plan, data, folded, o, qm};
  at::Tensor codes_before = qm.weights[0].codes.clone();
  bn_reestimate(ctx);
  EXPECT_TRUE(at::equal(codes_before, qm.weights[0].codes));  // only scales and bias change
  Executor ex(qdq_graph(qm));
  at::Tensor out = ex.run({data.get(0, 64).inputs[0]})[0];
  at::Tensor mean = out.mean({0, 2, 3}), sd = out.std({0, 2, 3}, false);
  EXPECT_TRUE(at::allclose(mean, g.initializers["beta"], 2e-2, 2e-2)) << mean << g.initializers["beta"];
  EXPECT_TRUE(at::allclose(sd, g.initializers["gamma"], 2e-2, 2e-2)) << sd << g.initializers["gamma"];
}

TEST(BiasTune, LowersTheKlToTheFloatLogits) {
  auto f = quantized_resnet(3, 4, 64);
  ReconOptions o;
  o.progress = false;
  o.bias_iters = 40;
  MethodContext ctx{f->prepared, f->plan, *f->calib, f->folded, o, f->qm};
  bias_tune(ctx);
  EXPECT_LT(ctx.report["bias_tune"]["kl_after"].get<double>(), ctx.report["bias_tune"]["kl_before"].get<double>());
}

TEST(Methods, TableRowsAndOptionScaling) {
  EXPECT_EQ(find_method("brecq").refine, &refine_brecq);
  EXPECT_EQ(find_method("mse").refine, nullptr);
  EXPECT_THROW(find_method("gptq"), Error);
  ReconOptions o;
  o.scale_iters(2000);
  EXPECT_EQ(o.iters, 2000);
  EXPECT_EQ(o.act_iters, 500);
  EXPECT_EQ(o.adaquant_iters, 100);
  EXPECT_THROW(o.scale_iters(0), Error);
}

}  // namespace
}  // namespace mixq::test
