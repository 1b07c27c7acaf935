// --act-placement (quant/act_placement.h): BRECQ's reference placement next to mixq's.
#include <gtest/gtest.h>
#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "api/allocate_step.h"
#include "exec/executor.h"
#include "pack/from_qmodel.h"
#include "quant/act_placement.h"
#include "quant/qdq.h"
#include "quant/quantize.h"
#include "quant/sparq_apply.h"
#include "mixq/error.h"
#include "test_util.h"

namespace mixq::test {
namespace {

const char* kStemOut = "/stem/stem.2/Relu_output_0";  // the ResNet fixture's first layer, after its ReLU

PreparedPlan resnet_plan(ActPlacement p, bool pin_first_output = false) {
  PlanDefaults d;
  d.wbits = 4;
  d.abits = 4;
  d.act_placement = p;
  d.pin_first_output = pin_first_output;
  PlanData data;
  data.calib = "fmnist:train:64";
  return prepare_plan(fixture("fmnist-resnet"), d, "minmax", data);
}

QuantizedModel quantize(const PreparedPlan& pp) {
  QuantizeOptions qo;
  qo.progress = false;
  return quantize_model(pp.prepared, pp.plan, *pp.calib, qo);
}

// The node reading `t` other than the quantized layers (the first block's identity Add).
const Node& residual_add(const Graph& g) {
  for (const auto& n : g.nodes)
    if (n.op_type == "Add" && n.name.find("layers.0") != std::string::npos) return n;
  throw std::runtime_error("no Add in the first block");
}

TEST(ActPlacement, OutputsPinsTheFirstLayersOutputAndQuantizesEveryReader) {
  PreparedPlan in = resnet_plan(ActPlacement::kInputs), out = resnet_plan(ActPlacement::kOutputs);
  ASSERT_EQ(in.plan.layers.size(), out.plan.layers.size());
  int raised = 0;
  for (size_t i = 0; i < in.plan.layers.size(); ++i) {
    const LayerPlan &a = in.plan.layers[i], &b = out.plan.layers[i];
    if (b.input == kStemOut) {
      EXPECT_EQ(a.input_scheme.bits, 4) << a.name;
      EXPECT_EQ(b.input_scheme.bits, 8) << b.name;  // the reference's 8-bit first-layer output
      ++raised;
    } else {
      EXPECT_EQ(a.input_scheme.bits, b.input_scheme.bits) << a.name;  // the rest as before
    }
  }
  EXPECT_EQ(raised, 1);  // the first block's conv1 (its shortcut is the identity)
  EXPECT_GT(out.plan.cost.bops, in.plan.cost.bops);

  // The identity Add reads the raw value under `inputs` and the quantized one under `outputs`.
  QuantizedModel qin = quantize(in), qout = quantize(out);
  const Graph gin = qdq_graph(qin), gout = qdq_graph(qout);
  const Node& add_in = residual_add(gin);
  const Node& add_out = residual_add(gout);
  EXPECT_NE(std::find(add_in.inputs.begin(), add_in.inputs.end(), kStemOut), add_in.inputs.end());
  EXPECT_EQ(std::find(add_out.inputs.begin(), add_out.inputs.end(), kStemOut), add_out.inputs.end());
  // ... which the simulation sees: the logits move.
  at::Tensor x = in.calib->get(0, 16).inputs.at(0);
  at::Tensor yin = simulation_executor(qin)->run({x})[0], yout = simulation_executor(qout)->run({x})[0];
  EXPECT_FALSE(at::allclose(yin, yout));

  // The packed runtime keeps residual paths float: packing `outputs` is refused, not run differently.
  try {
    pack_quantized_model(qout);
    FAIL() << "packed an outputs placement";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("act-placement"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(pack_quantized_model(qin));
}

// --pin-first-output: the same 8-bit readers of the first layer with mixq's own placement, which
// the packed runtime runs.
TEST(ActPlacement, PinFirstOutputRaisesItsReadersAndStillPacks) {
  PreparedPlan in = resnet_plan(ActPlacement::kInputs), pin = resnet_plan(ActPlacement::kInputs, true),
               out = resnet_plan(ActPlacement::kOutputs);
  for (size_t i = 0; i < pin.plan.layers.size(); ++i)
    EXPECT_EQ(pin.plan.layers[i].input_scheme.bits, out.plan.layers[i].input_scheme.bits) << pin.plan.layers[i].name;
  EXPECT_EQ(pin.plan.act_placement, ActPlacement::kInputs);
  EXPECT_DOUBLE_EQ(pin.plan.cost.bops, out.plan.cost.bops);
  EXPECT_EQ(pin.plan.cost.size_bytes, in.plan.cost.size_bytes);  // activations only
  QuantizedModel q = quantize(pin);
  const Graph g = qdq_graph(q);
  const Node& add = residual_add(g);
  EXPECT_NE(std::find(add.inputs.begin(), add.inputs.end(), kStemOut), add.inputs.end());  // residual float
  EXPECT_NO_THROW(pack_quantized_model(q));
}

TEST(ActPlacement, PlanJsonKeepsItAndRejectsUnknownValues) {
  PreparedPlan out = resnet_plan(ActPlacement::kOutputs);
  nlohmann::json j = plan_to_json(out.plan);
  EXPECT_EQ(j["act_placement"], "outputs");
  QuantPlan back = plan_from_json(j, out.plan, "plan.json");
  EXPECT_EQ(back.act_placement, ActPlacement::kOutputs);
  j.erase("act_placement");  // plans written before the option: inputs
  EXPECT_EQ(plan_from_json(j, out.plan, "plan.json").act_placement, ActPlacement::kInputs);
  j["act_placement"] = "middle";
  try {
    plan_from_json(j, out.plan, "plan.json");
    FAIL() << "accepted act_placement 'middle'";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("plan.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("middle"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_act_placement("both"), Error);
  EXPECT_STREQ(act_placement_name(parse_act_placement("outputs")), "outputs");
}

// BRECQ under `outputs`: the residual Add inside a block's loop reads the quantized value too, so
// the rounding and step learning see what the evaluation sees; a short run goes through and its
// result is evaluated with the same placement.
TEST(ActPlacement, BrecqRunsWithOutputsPlacement) {
  const std::string model = fixture("fmnist-resnet");
  const CliResult r = run_cli({"quantize", model, "--calib", "fmnist:train:64", "--method", "brecq", "--wbits", "4",
                               "--abits", "4", "--iters", "8", "--act-placement", "outputs", "--eval",
                               "fmnist:test:200", "--eval-weights-only", "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["top1_quant"].get<double>(), 50.0);
  EXPECT_GT(j["top1_weights_only"].get<double>(), 50.0);  // the rounding phase alone, activations float
  ASSERT_TRUE(j["method_report"].contains("activation_units"));
}

// The other two switches of the comparison: the activation phase's |error|^p and the samples its
// ranges start from. Both change the result (and so the checkpoint key), neither the rounding.
TEST(ActPlacement, ActivationPhaseSwitchesChangeOnlyTheActivationPhase) {
  const std::string model = fixture("fmnist-resnet");
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"quantize", model, "--calib", "fmnist:train:64", "--method", "brecq", "--wbits",
                                     "4", "--abits", "4", "--iters", "8", "--eval", "fmnist:test:200",
                                     "--eval-weights-only", "--recon-precision", "fp32", "--json", "-q"};
    args.insert(args.end(), extra.begin(), extra.end());
    const CliResult r = run_cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out);
  };
  const auto base = run({}), p24 = run({"--act-loss-p", "2.4"}), init = run({"--act-init-samples", "16"});
  EXPECT_EQ(base["top1_weights_only"], p24["top1_weights_only"]);
  EXPECT_EQ(base["top1_weights_only"], init["top1_weights_only"]);
  EXPECT_NE(base["fidelity"].dump(), p24["fidelity"].dump());
  EXPECT_NE(base["fidelity"].dump(), init["fidelity"].dump());
  EXPECT_EQ(run_cli({"quantize", model, "--act-loss-p", "0"}).exit_code, 2);
  // The sequential initialisation starts the steps elsewhere; the rounding is untouched.
  const auto seq = run({"--act-init", "sequential"});
  EXPECT_EQ(base["top1_weights_only"], seq["top1_weights_only"]);
  EXPECT_NE(base["fidelity"].dump(), seq["fidelity"].dump());
}

// A model from another exporter with units of several inputs and outputs, a Resize under
// autograd and no labels (the zoo's detection head): BRECQ with the default and with every switch
// of the reference comparison. Both once crashed: a moved TensorStore read an uninitialised
// budget pointer, and Resize's cached tables (and the sequential init's steps) were inference
// tensors that autograd cannot save.
TEST(ActPlacement, BrecqRunsOnADetectionHeadWithEveryReferenceSwitch) {
  TempDir tmp;
  for (const std::vector<std::string>& extra :
       {std::vector<std::string>{}, {"--act-init", "sequential", "--recon-pinned", "--act-inputs", "float"}}) {
    std::vector<std::string> args = {"quantize", models_dir() + "/zoo/det_fpn.onnx", "--calib",
                                     models_dir() + "/zoo/det_fpn.in.npz", "--method", "brecq", "--wbits", "4",
                                     "--abits", "8", "--iters", "8", "-o", tmp.file("q.onnx"), "--no-resume",
                                     "--json", "-q"};
    args.insert(args.end(), extra.begin(), extra.end());
    const CliResult r = run_cli(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["metric"], "sqnr");
    EXPECT_FALSE(j["method_report"]["activation_units"].empty());
  }
}

}  // namespace
}  // namespace mixq::test
