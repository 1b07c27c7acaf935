// SPARQ (quant/sparq_ref.h, quant/sparq_apply.h): bSPARQ windows and rounding on hand-computed
// cases, vSPARQ pairs, the vectorised path bit-exact against the reference, the plan rules, and
// the CLI end to end (simulation, report, refused exports).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <vector>

#include "mixq/error.h"
#include "quant/plan.h"
#include "quant/sparq_apply.h"
#include "quant/sparq_ref.h"
#include "test_util.h"

namespace mixq {
namespace {

struct Case {
  int m, want, low;
};

void expect_cases(SparqWindows w, const std::vector<Case>& cases) {
  for (const auto& c : cases) {
    int low = -1;
    EXPECT_EQ(bsparq_ref(c.m, w, &low), c.want) << sparq_windows_name(w) << " m=" << c.m;
    EXPECT_EQ(low, c.low) << sparq_windows_name(w) << " m=" << c.m;
  }
}

TEST(Sparq, Bsparq5optWindowsRoundingAndSaturation) {
  expect_cases(SparqWindows::k5opt, {
                                        {0, 0, 0},
                                        {7, 7, 0},
                                        {15, 15, 0},     // lead 3: [3:0] keeps it exactly
                                        {17, 16, 1},     // [4:1]: 1000|1 tie, 8 even -> 16
                                        {19, 20, 1},     // [4:1]: 1001|1 tie, 9 odd -> 10 -> 20
                                        {20, 20, 1},     // no dropped bits
                                        {31, 30, 1},     // 1111|1 tie -> 16 overflows: saturates at 1111
                                        {46, 48, 2},     // [5:2]: 1011|10 tie -> 1100
                                        {45, 44, 2},     // 1011|01 below half
                                        {91, 88, 3},     // [6:3]: 1011|011 below half
                                        {124, 120, 3},   // 1111|100 tie -> 16: saturates
                                        {135, 128, 4},   // [7:4]: 1000|0111 below half
                                        {136, 128, 4},   // 1000|1000 tie, even
                                        {152, 160, 4},   // 1001|1000 tie, odd -> 1010
                                        {255, 240, 4},   // 1111|1111 rounds up: saturates
                                    });
}

TEST(Sparq, Bsparq3optWindowsRoundingAndSaturation) {
  expect_cases(SparqWindows::k3opt, {
                                        {9, 9, 0},
                                        {15, 15, 0},
                                        {18, 16, 2},    // lead 4 -> [5:2]: 0100|10 tie, even
                                        {19, 20, 2},    // 0100|11 above half
                                        {22, 24, 2},    // 0101|10 tie, odd -> 0110
                                        {46, 48, 2},    // lead 5 -> [5:2]
                                        {63, 60, 2},    // 1111|11 rounds up: saturates
                                        {91, 96, 4},    // lead 6 -> [7:4]: 0101|1011 above half
                                        {88, 96, 4},    // 0101|1000 tie, odd -> 0110
                                        {72, 64, 4},    // 0100|1000 tie, even
                                        {255, 240, 4},
                                    });
}

TEST(Sparq, Bsparq2optWindowsRoundingAndSaturation) {
  expect_cases(SparqWindows::k2opt, {
                                        {15, 15, 0},
                                        {16, 16, 4},
                                        {23, 16, 4},    // 0001|0111 below half
                                        {24, 32, 4},    // 0001|1000 tie, odd -> 0010
                                        {25, 32, 4},
                                        {40, 32, 4},    // 0010|1000 tie, even
                                        {91, 96, 4},
                                        {250, 240, 4},  // 1111|1010 rounds up: saturates
                                    });
}

TEST(Sparq, ActSchemeNamesRoundTrip) {
  for (const char* s : {"uniform", "sparq:5opt", "sparq:5opt,v", "sparq:3opt", "sparq:3opt,v", "sparq:2opt",
                        "sparq:2opt,v"})
    EXPECT_EQ(act_scheme_name(parse_act_scheme(s)), s);
  EXPECT_THROW(parse_act_scheme("sparq:4opt"), Error);
  EXPECT_THROW(parse_act_scheme("sparq"), Error);
}

TEST(Sparq, VsparqPairsWithZeroPartnersKeep8Bits) {
  // One row, len 7: pairs (5,0) (19,20) (0,0) and the unpaired 31 (its partner is padding).
  const std::vector<int32_t> d = {5, 0, 19, 21, 0, 0, 31};
  std::vector<int32_t> out(d.size());
  SparqStats st;
  sparq_ref(d.data(), 1, 7, 1, SparqScheme{true, SparqWindows::k5opt, true}, out.data(), &st);
  EXPECT_EQ(out, (std::vector<int32_t>{5, 0, 20, 20, 0, 0, 31}));  // 21 = 1010|1 tie, even -> 20
  EXPECT_EQ(st.pairs, 4);
  EXPECT_EQ(st.pairs_8bit, 3);
  EXPECT_EQ(st.zeros, 3);
  EXPECT_EQ(st.window[1], 2);  // 19 and 21 went through [4:1]
  EXPECT_EQ(st.rounded, 2);
  // Without vSPARQ every nonzero value is windowed; 31 saturates.
  sparq_ref(d.data(), 1, 7, 1, SparqScheme{true, SparqWindows::k5opt, false}, out.data());
  EXPECT_EQ(out, (std::vector<int32_t>{5, 0, 20, 20, 0, 0, 30}));
  // Pairs run along the middle axis: [outer 1, len 2, inner 2] pairs (a, c) and (b, e).
  const std::vector<int32_t> d2 = {0, 255, 200, 0};
  sparq_ref(d2.data(), 1, 2, 2, SparqScheme{true, SparqWindows::k2opt, true}, out.data());
  EXPECT_EQ(std::vector<int32_t>(out.begin(), out.begin() + 4), (std::vector<int32_t>{0, 255, 200, 0}));
  const std::vector<int32_t> d3 = {9, 255, 200, 0};  // pair (9, 200) has no zero: both windowed
  sparq_ref(d3.data(), 1, 2, 2, SparqScheme{true, SparqWindows::k2opt, true}, out.data());
  EXPECT_EQ(std::vector<int32_t>(out.begin(), out.begin() + 4), (std::vector<int32_t>{9, 255, 192, 0}));
}

TEST(Sparq, SignedValuesUseTheMagnitude) {
  const std::vector<int32_t> d = {-19, 7, -200, 0, 255, -255};
  std::vector<int32_t> out(d.size());
  sparq_ref(d.data(), 1, 6, 1, SparqScheme{true, SparqWindows::k5opt, false}, out.data());
  EXPECT_EQ(out, (std::vector<int32_t>{-20, 7, -192, 0, 240, -240}));
  const std::vector<int32_t> bad = {256};
  EXPECT_THROW(sparq_ref(bad.data(), 1, 1, 1, SparqScheme{true, SparqWindows::k5opt, false}, out.data()), Error);
}

// The vectorised path against the reference on random codes (many zeros, both signs), odd sizes,
// every axis, every scheme: same values bit for bit and the same counts.
TEST(Sparq, FastPathMatchesReferenceOnRandomCodes) {
  at::manual_seed(19);
  const std::vector<int64_t> shape = {3, 5, 4, 7};
  at::Tensor codes = at::randint(-255, 256, shape, at::kInt);
  codes = at::where(at::rand(shape) < 0.4, at::zeros_like(codes), codes);
  const float scale = 0.0371f;
  const at::Tensor x = codes.to(at::kFloat) * scale;  // what DequantizeLinear gives
  for (SparqWindows w : {SparqWindows::k5opt, SparqWindows::k3opt, SparqWindows::k2opt})
    for (bool v : {false, true})
      for (int64_t axis : {0, 1, 2, 3, -1}) {
        const SparqScheme s{true, w, v};
        SparqStats fast_st, ref_st;
        const at::Tensor y = sparq_fake_quant(x, scale, s, axis, &fast_st);
        const int64_t ax = axis < 0 ? axis + 4 : axis;
        int64_t outer = 1, inner = 1;
        for (int64_t i = 0; i < ax; ++i) outer *= shape[static_cast<size_t>(i)];
        for (int64_t i = ax + 1; i < 4; ++i) inner *= shape[static_cast<size_t>(i)];
        at::Tensor c = codes.contiguous();
        at::Tensor ref = at::empty_like(c);
        sparq_ref(c.data_ptr<int32_t>(), outer, shape[static_cast<size_t>(ax)], inner, s, ref.data_ptr<int32_t>(),
                  &ref_st);
        const at::Tensor want = ref.to(at::kFloat) * scale;
        EXPECT_TRUE(at::equal(y, want)) << act_scheme_name(s) << " axis " << axis;
        EXPECT_EQ(fast_st.values, ref_st.values);
        EXPECT_EQ(fast_st.zeros, ref_st.zeros);
        EXPECT_EQ(fast_st.pairs, ref_st.pairs);
        EXPECT_EQ(fast_st.pairs_8bit, ref_st.pairs_8bit);
        EXPECT_EQ(fast_st.rounded, ref_st.rounded);
        EXPECT_EQ(fast_st.window, ref_st.window) << act_scheme_name(s) << " axis " << axis;
      }
}

LayerPlan layer(const std::string& name, const std::string& input, int abits, SparqScheme s) {
  LayerPlan L;
  L.name = name;
  L.op = "Conv";
  L.weight = name + "_w";
  L.weight_shape = {4, 4, 3, 3};
  L.params = 144;
  L.macs = 1000;
  L.input = input;
  L.input_scheme.bits = abits;
  L.input_sparq = s;
  return L;
}

TEST(Sparq, PlanRulesAndCost) {
  const SparqScheme s5v{true, SparqWindows::k5opt, true};
  QuantPlan p;
  p.layers = {layer("a", "t0", 8, s5v), layer("b", "t1", 8, s5v), layer("c", "t1", 8, SparqScheme{})};
  unify_shared_inputs(p);  // b and c share t1 but disagree: t1 stays plain
  EXPECT_TRUE(p.layers[0].input_sparq.enabled);
  EXPECT_FALSE(p.layers[1].input_sparq.enabled);
  EXPECT_FALSE(p.layers[2].input_sparq.enabled);
  // BOPs: a SPARQ input costs a 4-bit window.
  EXPECT_EQ(layer_bops(p.layers[0]), 1000.0 * 8 * 4);
  EXPECT_EQ(layer_bops(p.layers[1]), 1000.0 * 8 * 8);
  // A SPARQ input below 8 bits is refused, naming the layer.
  p.layers[0].input_scheme.bits = 4;
  try {
    validate_plan(p, "p.json");
    FAIL() << "4-bit SPARQ input accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer 'a'"), std::string::npos) << e.what();
  }
  // JSON: act_scheme written only where SPARQ is on, and read back.
  p.layers[0].input_scheme.bits = 8;
  const nlohmann::json j = plan_to_json(p);
  EXPECT_EQ(j["layers"][0]["input_quant"]["act_scheme"], "sparq:5opt,v");
  EXPECT_FALSE(j["layers"][1]["input_quant"].contains("act_scheme"));
}

TEST(Sparq, CliSimulatesReportsAndRefusesExport) {
  const std::string model = test::fixture("fmnist-resnet");
  test::TempDir tmp;
  auto r = test::run_cli({"quantize", model, "--calib", "fmnist:train:64", "--eval", "fmnist:test:200", "--wbits", "8",
                          "--symmetric-weights", "--act-scheme", "sparq:3opt,v", "--plan-out", tmp.file("p.json"),
                          "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["act_scheme"], "sparq:3opt,v");
  ASSERT_TRUE(j["sparq"].is_object()) << r.out;
  const double f = j["sparq"]["frac_pairs_8bit"].get<double>();
  EXPECT_GT(f, 0.0);  // post-ReLU activations have zeros
  EXPECT_LT(f, 1.0);
  EXPECT_GT(j["sparq"]["tensors"].get<int>(), 0);
  EXPECT_EQ(j["sparq"]["window_share"].size(), 5u);
  EXPECT_EQ(j["sparq"]["window_share"]["[6:3]"].get<double>(), 0.0);  // not a 3opt placement
  EXPECT_GT(j["top1_quant"].get<double>(), 50.0);
  bool any = false, pinned_plain = true;
  for (const auto& L : j["layers"]) {
    any = any || L.contains("act_scheme");
    if (L["pinned"].get<bool>()) pinned_plain = pinned_plain && !L.contains("act_scheme");
  }
  EXPECT_TRUE(any);
  EXPECT_TRUE(pinned_plain);

  // A plan that asks for SPARQ cannot be exported either: no silent plain-A8 model.
  r = test::run_cli({"quantize", model, "--calib", "fmnist:train:16", "--plan", tmp.file("p.json"), "-o",
                     tmp.file("p.onnx"), "-q"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("QDQ ONNX export (-o) cannot express the SPARQ activation scheme (sparq:3opt,v"),
            std::string::npos) << r.err;
  r = test::run_cli({"quantize", model, "--calib", "fmnist:train:16", "--act-scheme", "sparq:5opt", "-o",
                     tmp.file("m.onnx"), "-q"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("SPARQ"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--act-scheme sparq:5opt"), std::string::npos) << r.err;
  r = test::run_cli({"quantize", model, "--calib", "fmnist:train:16", "--act-scheme", "sparq:5opt", "--abits", "4",
                     "-q"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--abits 8"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mixq
