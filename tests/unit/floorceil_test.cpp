// Floor/ceil rounding (quant/methods/floorceil.h, search/floorceil.cpp): the floor and ceil codes
// are the scalar reference's, the search never keeps a move that raises the measured calibration
// loss (every measured move is in the trace; the final loss is re-measured independently), it
// composes with another allocator's plan, and QDQ export and packing carry the chosen codes.
#include <ATen/ATen.h>

#include <cmath>
#include <vector>

#include "exec/shapes.h"
#include "graph/fold_bn.h"
#include "onnx/import.h"
#include "quant/methods/calib_loss.h"
#include "quant/methods/floorceil.h"
#include "quant/methods/recon_model.h"
#include "quant/quantize.h"
#include "quant/quantizer.h"
#include "quant/reference.h"
#include "search/allocator.h"
#include "test_util.h"

namespace mixq::test {
namespace {

TEST(FloorCeil, CodesAreTheReferenceFloorAndCeil) {
  at::manual_seed(3);
  at::Tensor w = at::randn({7, 3, 3, 5});  // odd sizes; per channel along axis 0
  for (Granularity g : {Granularity::kPerTensor, Granularity::kPerChannel}) {
    for (bool sym : {false, true}) {
      QuantizedWeight qw;
      qw.scheme.bits = 4;
      qw.scheme.granularity = g;
      qw.scheme.symmetric = sym;
      qw.params = weight_params(w, qw.scheme, RangeOptions{});
      qw.codes = quantize(w, qw.params, qw.scheme);
      at::Tensor f = rounded_codes(qw, w, Rounding::kFloor), c = rounded_codes(qw, w, Rounding::kCeil);
      // The scalar reference with the scheme's rounding set to floor / ceil.
      const std::vector<int64_t> shape(w.sizes().begin(), w.sizes().end());
      at::Tensor s = qw.params.scale.contiguous().reshape({-1}), z = qw.params.zero_point.contiguous().reshape({-1});
      for (Rounding r : {Rounding::kFloor, Rounding::kCeil}) {
        QScheme rs = qw.scheme;
        rs.rounding = r;
        std::vector<float> q(w.numel());
        ref::quantize(w.contiguous().data_ptr<float>(), shape, rs, s.data_ptr<float>(), z.data_ptr<float>(), nullptr,
                      q.data());
        at::Tensor expect = at::from_blob(q.data(), w.sizes(), at::kFloat).clone();
        EXPECT_TRUE(at::equal(r == Rounding::kFloor ? f : c, expect)) << granularity_name(g) << " sym " << sym;
      }
      // floor <= nearest <= ceil, at most one code apart, and floor / ceil bracket w / s + z.
      EXPECT_TRUE((f <= qw.codes).all().item<bool>() && (qw.codes <= c).all().item<bool>());
      EXPECT_LE((c - f).max().item<float>(), 1.0f);
      at::Tensor t = w / qw.params.scale + qw.params.zero_point;
      at::Tensor inside = (t >= qw.scheme.qmin()) & (t <= qw.scheme.qmax());
      EXPECT_TRUE((f.masked_select(inside) <= t.masked_select(inside)).all().item<bool>());
      EXPECT_TRUE((c.masked_select(inside) >= t.masked_select(inside)).all().item<bool>());
    }
  }
}

struct Fixture {
  Graph g, prepared;
  std::vector<FoldedBn> folded;
  QuantPlan plan;
  std::unique_ptr<Dataset> calib;
  explicit Fixture(const std::string& name, int bits, int64_t samples) {
    g = load_onnx(fixture(name));
    prepared = g;
    fold_batchnorm(prepared, &folded);
    PlanDefaults d;
    d.wbits = d.abits = bits;
    plan = make_plan(prepared, find_layers(prepared), d);
    calib = open_dataset("fmnist:train:" + std::to_string(samples), g.inputs, preprocess_from_metadata(g));
  }
};

// The subset's loss of qm measured from scratch (a fresh model over the codes it holds).
double measured_loss(QuantizedModel& qm, const Dataset& data) {
  ReconModel rm(qm);
  for (ActQuant* a : rm.acts()) a->enabled = true;
  CalibSubset s(rm.fp(), data, 256, qm.graph.source_path);
  at::NoGradGuard ng;
  return s.loss(rm.quant());
}

void check_trace(const nlohmann::json& r) {
  double loss = r["loss_before"].get<double>();
  int accepted = 0;
  for (const auto& e : r["trace"]) {
    EXPECT_DOUBLE_EQ(e["loss_before"].get<double>(), loss) << e.dump();  // each move starts where the last kept one ended
    if (e["accepted"].get<bool>()) {
      EXPECT_LT(e["loss_after"].get<double>(), loss) << e.dump();
      loss = e["loss_after"].get<double>();
      ++accepted;
    } else {
      EXPECT_GE(e["loss_after"].get<double>(), loss) << e.dump();  // rejected only when it did not drop
    }
    EXPECT_LT(e["predicted"].get<double>(), 0.0) << "only moves predicted to help are tried";
  }
  EXPECT_DOUBLE_EQ(r["loss_after"].get<double>(), loss);
  EXPECT_EQ(r["accepted"].get<int>(), accepted);
  EXPECT_LE(r["loss_after"].get<double>(), r["loss_before"].get<double>());
}

TEST(FloorCeil, NeverKeepsAMoveThatRaisesTheMeasuredLoss) {
  Fixture f("fmnist-resnet", 4, 96);
  QuantizeOptions qo;
  qo.progress = false;
  ReconOptions ro;
  ro.progress = false;
  for (const char* gran : {"layer", "channel"}) {
    QuantizedModel qm = quantize_model(f.prepared, f.plan, *f.calib, qo);
    std::vector<at::Tensor> before;
    for (const auto& w : qm.weights) before.push_back(w.codes.clone());
    MethodContext ctx{f.prepared, f.plan, *f.calib, f.folded, ro, qm};
    FloorCeilOptions o;
    o.granularity = gran;
    o.batch = 64;  // two batches, the last one short
    FloorCeilResult res = floorceil_rounding(ctx, o);
    const nlohmann::json& r = res.report;
    SCOPED_TRACE(gran);
    EXPECT_EQ(r["loss"], "cross-entropy");
    EXPECT_GT(r["evaluations"].get<int>(), 0);
    check_trace(r);
    // The codes left in the model give the reported loss, up to float32 summation order (the
    // method and this check batch differently; AVX2 and AVX-512 kernels differ at ~1e-8).
    EXPECT_NEAR(measured_loss(qm, *f.calib), r["loss_after"].get<double>(), 2e-8);
    // Every changed code moved to floor or ceil of its own value, never further; layers reported
    // as wholly floor / ceil hold exactly those codes.
    for (size_t i = 0; i < qm.weights.size(); ++i) {
      const auto& qw = qm.weights[i];
      const at::Tensor w = qm.graph.initializers.at(qw.weight);
      at::Tensor fl = rounded_codes(qw, w, Rounding::kFloor), ce = rounded_codes(qw, w, Rounding::kCeil);
      EXPECT_TRUE(((qw.codes == before[i]) | (qw.codes == fl) | (qw.codes == ce)).all().item<bool>()) << qw.node;
      auto it = res.layer_rounding.find(qw.node);
      if (it != res.layer_rounding.end()) {
        EXPECT_TRUE(at::equal(qw.codes, it->second == Rounding::kFloor ? fl : ce)) << qw.node;
      }
    }
  }
  // Without labels the loss is the fidelity to the float outputs, and the same rule holds.
  auto unlabelled = memory_dataset(f.calib->get(0, 96).inputs, at::Tensor(), "fmnist:train:96 without labels");
  QuantizedModel qm = quantize_model(f.prepared, f.plan, *unlabelled, qo);
  MethodContext ctx{f.prepared, f.plan, *unlabelled, f.folded, ro, qm};
  FloorCeilResult res = floorceil_rounding(ctx, FloorCeilOptions{});
  EXPECT_EQ(res.report["loss"], "fidelity to the float outputs");
  EXPECT_EQ(res.report["loss_float"].get<double>(), 0.0);
  check_trace(res.report);
  EXPECT_NEAR(measured_loss(qm, *unlabelled), res.report["loss_after"].get<double>(), 1e-12);
}

TEST(FloorCeil, ComposesWithAnotherAllocatorsPlan) {
  TempDir d;
  // MixQuant's bits alone, then the same bits under floorceil with inputs tied to weight bits.
  CliResult m = run_cli({"quantize", fixture("fmnist-resnet"), "--search", "mixquant", "--budget-bits", "4",
                         "--calib", "fmnist:train:64", "--plan-out", d.file("mq.json"), "-q", "--json"});
  ASSERT_EQ(m.exit_code, 0) << m.err;
  CliResult r = run_cli({"quantize", fixture("fmnist-resnet"), "--search", "floorceil", "--floorceil-base", "mixquant",
                         "--budget-bits", "4", "--calib", "fmnist:train:64", "-q", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto jm = nlohmann::json::parse(m.out), jr = nlohmann::json::parse(r.out);
  ASSERT_EQ(jm["layers"].size(), jr["layers"].size());
  bool mixed = false;
  for (size_t i = 0; i < jr["layers"].size(); ++i) {
    EXPECT_EQ(jr["layers"][i]["wbits"], jm["layers"][i]["wbits"]) << i;
    mixed = mixed || jr["layers"][i]["wbits"] != jr["layers"][0]["wbits"];
    // Input at the weight's bits, or higher where the tensor is shared with a higher-bit reader.
    EXPECT_GE(jr["layers"][i]["abits"].get<int>(), jr["layers"][i]["wbits"].get<int>()) << i;
  }
  EXPECT_TRUE(mixed) << "MixQuant at 4 bits should give mixed bits on this fixture";
  EXPECT_EQ(jr["search"], "floorceil");
  EXPECT_EQ(jr["search_params"]["base"], "mixquant");
  const nlohmann::json& fc = jr["method_report"]["floorceil"];
  EXPECT_LE(fc["loss_after"].get<double>(), fc["loss_before"].get<double>());
  // A user plan (here MixQuant's file) is taken as it is; the rounding search still runs.
  CliResult p = run_cli({"quantize", fixture("fmnist-resnet"), "--plan", d.file("mq.json"), "--search", "floorceil",
                         "--floorceil-granularity", "channel", "--calib", "fmnist:train:64", "-q", "--json"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  auto jp = nlohmann::json::parse(p.out);
  for (size_t i = 0; i < jp["layers"].size(); ++i) EXPECT_EQ(jp["layers"][i]["wbits"], jm["layers"][i]["wbits"]) << i;
  EXPECT_EQ(jp["method_report"]["floorceil"]["granularity"], "channel");
}

TEST(FloorCeil, ExportAndPackCarryTheChosenCodes) {
  TempDir d;
  CliResult q = run_cli({"quantize", fixture("fmnist-resnet"), "--search", "floorceil", "--wbits", "4", "--calib",
                         "fmnist:train:128", "--eval", "fmnist:test:200", "--save-outputs", d.file("sim.npz"), "-o",
                         d.file("q.onnx"), "--pack", d.file("q.mxq"), "--plan-out", d.file("plan.json"), "-q", "--json"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  auto j = nlohmann::json::parse(q.out);
  const nlohmann::json& fc = j["method_report"]["floorceil"];
  ASSERT_GT(fc["layers_flipped"].get<int>(), 0) << fc.dump();  // otherwise this test proves nothing
  EXPECT_FALSE(j["loss_quant_before_finish"].is_null());
  // The QDQ model gives the simulation's outputs (the same graph, the same codes).
  CliResult e = run_cli({"eval", d.file("q.onnx"), "--data", "fmnist:test:200", "--reference", d.file("sim.npz"),
                         "--json", "-q"});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  auto je = nlohmann::json::parse(e.out);
  EXPECT_LT(je["fidelity"][0]["max_abs_err"].get<double>(), 1e-4) << je.dump();
  EXPECT_DOUBLE_EQ(je["top1"].get<double>(), j["top1_quant"].get<double>());
  // The packed runtime (integer kernels) agrees with it to integer-kernel rounding.
  CliResult r = run_cli({"run", d.file("q.mxq"), "--data", "fmnist:test:200", "--reference", d.file("sim.npz"),
                         "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto jr = nlohmann::json::parse(r.out);
  EXPECT_GT(jr["fidelity"][0]["sqnr_db"].get<double>(), 30.0) << jr.dump();
  EXPECT_GE(jr["fidelity"][0]["top1_agreement"].get<double>(), 98.0) << jr.dump();
  // Layers now wholly floor or ceil say so in the plan.
  auto plan = nlohmann::json::parse(read_file(d.file("plan.json")));
  int marked = 0;
  for (const auto& L : plan["layers"])
    if (L.contains("weight_quant") && L["weight_quant"]["rounding"] != "nearest") ++marked;
  int whole = 0;
  for (const auto& L : fc["layers"]) whole += L.contains("rounding");
  EXPECT_EQ(marked, whole);
}

}  // namespace
}  // namespace mixq::test
