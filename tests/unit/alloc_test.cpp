// Budgeted allocation: the integer program against brute force on random tables, budgets and
// hardware specs respected by every solver, byte accounting of chosen plans, infeasible budgets,
// and the sensitivity table on a real fixture (signals, cache resume).
#include <ATen/ATen.h>

#include <chrono>
#include <random>

#include "api/allocate_step.h"
#include "search/hw_spec.h"
#include "search/problem.h"
#include "search/sensitivity.h"
#include "search/solvers.h"
#include "alloc_util.h"
#include "test_util.h"

namespace mixq {
namespace {

using test::ip_matches_brute_force;
using test::synthetic_plan;
using test::synthetic_table;

TEST(IntegerProgram, MatchesBruteForceOnRandomTables) {
  std::mt19937_64 rng(7);
  int checked = 0;
  for (int trial = 0; trial < 40; ++trial) {
    QuantPlan plan = synthetic_plan(5, rng, trial % 2 == 0);
    SensitivityTable t = synthetic_table(plan, rng);
    Budget b;
    std::uniform_real_distribution<double> U(0, 1);
    switch (trial % 4) {
      case 0: b.avg_wbits = 2 + 5 * U(rng); break;
      case 1: b.bytes = static_cast<int64_t>(plan.cost.size_bytes * (0.2 + 0.7 * U(rng))); break;
      case 2: b.bops = plan.cost.bops * (0.2 + 0.7 * U(rng)); b.avg_wbits = 3 + 4 * U(rng); break;
      case 3: b.max_drop = 0.05 * U(rng); break;
    }
    Problem p = build_problem(plan, &t, "dl", b, {}, nullptr, nullptr);
    if (ip_matches_brute_force(p, trial)) ++checked;
  }
  EXPECT_GT(checked, 25);
}

TEST(Allocators, ChosenPlansMeetTheirBudgetsInRealBytes) {
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 12; ++trial) {
    QuantPlan plan = synthetic_plan(12, rng, true);
    SensitivityTable t = synthetic_table(plan, rng);
    Budget b;
    b.bytes = static_cast<int64_t>(plan.cost.size_bytes * (0.45 + 0.04 * trial));
    b.bops = plan.cost.bops * 0.6;
    Problem p = build_problem(plan, &t, "dl", b, {}, nullptr, nullptr);
    std::vector<std::pair<std::string, std::optional<Choice>>> sols;
    sols.emplace_back("ip", solve_ip(p));
    GeneticOptions go;
    go.seed = trial;
    sols.emplace_back("genetic", solve_genetic(p, go));
    std::optional<Choice> greedy;
    for (const auto& c : pareto_curve(p))
      if (feasible(p, c)) {
        greedy = c;
        break;
      }
    sols.emplace_back("pareto", greedy);
    for (auto& [name, c] : sols) {
      ASSERT_TRUE(c.has_value()) << name << " trial " << trial;
      QuantPlan q = plan;
      apply_choice(p, *c, q);
      // update_cost is what reports and exports use: the allocator's linear model must agree.
      EXPECT_LE(q.cost.size_bytes, b.bytes) << name;
      EXPECT_LE(q.cost.bops, b.bops * (1 + 1e-9)) << name;
      EXPECT_EQ(q.layers[0].weight_scheme.bits, 8) << name << ": pinned layer moved";
      if (name != "ip") {
        EXPECT_GE(objective(p, *c), objective(p, *sols[0].second) - 1e-12) << name << " beat the optimum";
      }
    }
  }
}

TEST(Allocators, InfeasibleBudgetReportsMinimumAndBindingLayers) {
  std::mt19937_64 rng(3);
  QuantPlan plan = synthetic_plan(6, rng, true);
  SensitivityTable t = synthetic_table(plan, rng);
  Budget b;
  b.avg_wbits = 1.5;
  Problem p = build_problem(plan, &t, "dl", b, {}, nullptr, nullptr);
  EXPECT_FALSE(solve_ip(p).has_value());
  finish_plan(p, fallback_choice(p), "ip", nlohmann::json::object(), b, plan);
  ASSERT_TRUE(plan.search_params.contains("infeasible"));
  const auto& r = plan.search_params["infeasible"][0];
  EXPECT_EQ(r["budget"], "avg_wbits");
  EXPECT_NEAR(r["minimum_feasible"].get<double>(), plan.cost.avg_wbits, 1e-9);  // the fallback is the minimum
  bool pinned_listed = false;
  for (const auto& l : r["binding_layers"]) pinned_listed |= l["layer"] == "layer0";
  EXPECT_TRUE(pinned_listed);
}

TEST(Allocators, SolveFromATableIsFast) {
  std::mt19937_64 rng(5);
  QuantPlan plan = synthetic_plan(60, rng, true);
  SensitivityTable t = synthetic_table(plan, rng);
  Budget b;
  b.avg_wbits = 3.5;
  auto t0 = std::chrono::steady_clock::now();
  Problem p = build_problem(plan, &t, "dl", b, {}, nullptr, nullptr);
  auto c = solve_ip(p);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(c.has_value());
  EXPECT_LT(secs, 1.0);
}

nlohmann::json spec_json() {
  return nlohmann::json::parse(R"({"mixq_hw_version": 1, "name": "test",
    "ops": {"Conv": {"weight_bits": [4, 8], "act_bits": [8], "granularity": ["per_channel"]},
            "default": {"weight_bits": [8], "act_bits": [8]}},
    "shared": {"groups": [["layer1", "layer4"]]}})");
}

TEST(HwSpec, SolversOnlyEmitAllowedBitsAndKeepGroupsTogether) {
  std::mt19937_64 rng(9);
  QuantPlan plan = synthetic_plan(8, rng, false);
  SensitivityTable t = synthetic_table(plan, rng);
  HwSpec hw = hw_spec_from_json(spec_json(), "test.json");
  Graph g;  // explicit groups only: no graph needed
  auto groups = shared_groups(hw, g, plan);
  std::vector<std::vector<int>> multi;
  for (auto& grp : groups)
    if (grp.size() > 1) multi.push_back(grp);
  ASSERT_EQ(multi.size(), 1u);
  // Halfway between the spec's minimum average (Gemm at 8, Conv at 4) and 8 bits: feasible, binding.
  double num = 0, den = 0;
  for (const auto& L : plan.layers) {
    num += double(L.params) * (L.op == "Gemm" ? 8 : 4);
    den += double(L.params);
  }
  Budget b;
  b.avg_wbits = 0.5 * (num / den + 8);
  Problem p = build_problem(plan, &t, "dl", b, multi, &hw, nullptr);
  GeneticOptions go;
  for (auto c : {solve_ip(p), solve_genetic(p, go)}) {
    ASSERT_TRUE(c.has_value());
    QuantPlan q = plan;
    apply_choice(p, *c, q);
    EXPECT_NO_THROW(check_plan_against_spec(q, hw, g));
    for (const auto& L : q.layers) {
      if (L.op == "Gemm") EXPECT_EQ(L.weight_scheme.bits, 8) << L.name;
      else EXPECT_TRUE(L.weight_scheme.bits == 4 || L.weight_scheme.bits == 8) << L.name;
    }
    EXPECT_EQ(q.layers[1].weight_scheme.bits, q.layers[4].weight_scheme.bits);
  }
  // A forbidden plan is refused, naming the layer and the spec.
  QuantPlan bad = plan;
  bad.layers[0].weight_scheme.bits = 3;
  try {
    check_plan_against_spec(bad, hw, g);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer0"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("test.json"), std::string::npos);
  }
}

TEST(HwSpec, MalformedSpecsAreClearErrors) {
  auto j = spec_json();
  j["ops"]["Conv"]["weight_bits"] = {9};
  EXPECT_THROW(hw_spec_from_json(j, "x.json"), Error);
  j = spec_json();
  j["ops"]["Conv"].erase("act_bits");
  EXPECT_THROW(hw_spec_from_json(j, "x.json"), Error);
  EXPECT_THROW(hw_spec_from_json(nlohmann::json::object(), "x.json"), Error);
  j = spec_json();
  j["shared"]["groups"] = nlohmann::json::array({nlohmann::json::array({"layer1", "nope"})});
  HwSpec hw = hw_spec_from_json(j, "x.json");
  std::mt19937_64 rng(1);
  QuantPlan plan = synthetic_plan(3, rng, false);
  Graph g;
  EXPECT_THROW(shared_groups(hw, g, plan), Error);
}

TEST(HwSpec, ExampleSpecsLoad) {
  for (const char* f : {"int8-cpu.json", "w4a8-accel.json", "any-2-8.json"})
    EXPECT_NO_THROW(load_hw_spec(test::source_dir() + "/hw/" + f)) << f;
}

TEST(Sensitivity, MeasuresSignalsAndResumesFromCache) {
  test::TempDir tmp;
  PlanDefaults d;
  d.wbits = 8;
  PreparedPlan pp = prepare_plan(test::fixture("fmnist-mlp"), d, "minmax");
  auto calib = open_dataset("fmnist:train:128", pp.prepared.inputs, preprocess_from_metadata(pp.original));
  SensitivityOptions so;
  so.samples = 128;
  so.bits = {2, 4, 8};
  so.progress = false;
  so.calib_spec = "fmnist:train:128";
  so.model_path = test::fixture("fmnist-mlp");
  so.cache_path = tmp.file("t.json");
  so.curvature = true;
  SensitivityTable t = measure_sensitivity(pp.prepared, pp.plan, calib.get(), so);
  size_t unpinned = 0;
  for (const auto& L : pp.plan.layers) unpinned += !L.pinned;
  ASSERT_EQ(t.layers.size(), unpinned);
  ASSERT_GT(unpinned, 0u);
  for (const auto& l : t.layers) {
    EXPECT_EQ(l.bits.at(8).dl, 0);
    EXPECT_GT(l.bits.at(2).mse, l.bits.at(4).mse);
    EXPECT_GT(l.bits.at(2).noise, 0);
    EXPECT_GT(l.bits.at(2).kl, 0);
    EXPECT_GT(l.bits.at(2).fisher, l.bits.at(4).fisher);
    EXPECT_GT(l.bits.at(2).hessian, 0);
    EXPECT_EQ(l.bits.at(8).hessian, 0);
  }
  EXPECT_TRUE(t.has_fisher);
  EXPECT_TRUE(t.has_hessian);
  // Second run: same key, everything from the cache (identical numbers, no new measuring time).
  SensitivityTable t2 = measure_sensitivity(pp.prepared, pp.plan, calib.get(), so);
  EXPECT_EQ(table_to_json(t2)["layers"], table_to_json(t)["layers"]);
  EXPECT_NEAR(t2.seconds, t.seconds, 0.5);
  // A different setting is a different key: recomputed, not reused.
  so.bits = {3, 8};
  SensitivityTable t3 = measure_sensitivity(pp.prepared, pp.plan, calib.get(), so);
  EXPECT_EQ(t3.layers[0].bits.count(2), 0u);
  EXPECT_EQ(t3.layers[0].bits.count(3), 1u);
  // Malformed tables are refused with the file named.
  test::write_file(tmp.file("bad.json"), R"({"mixq_sensitivity_version": 1, "layers": 3})");
  try {
    load_table(tmp.file("bad.json"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.json"), std::string::npos);
  }
}

}  // namespace
}  // namespace mixq

namespace mixq {
namespace {

// The additivity repair's pair terms (both signs, in the objective and in the max-drop
// constraint) are solved exactly: the IP equals brute force on objective() with the pairs.
TEST(IntegerProgram, PairTermsMatchBruteForce) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> U(0, 1);
  int checked = 0;
  for (int trial = 0; trial < 30; ++trial) {
    QuantPlan plan = synthetic_plan(5, rng, false);
    SensitivityTable t = synthetic_table(plan, rng);
    Budget b;
    if (trial % 3 == 2) b.max_drop = 0.05 * U(rng); else b.avg_wbits = 2.5 + 3 * U(rng);
    Problem p = build_problem(plan, &t, "dl", b, {}, nullptr, nullptr);
    for (int k = 0; k < 6; ++k) {
      PairTerm pt;
      pt.ua = static_cast<int>(rng() % 5);
      pt.ub = (pt.ua + 1 + static_cast<int>(rng() % 4)) % 5;
      pt.oa = static_cast<int>(rng() % p.units[pt.ua].bits.size());
      pt.ob = static_cast<int>(rng() % p.units[pt.ub].bits.size());
      // Interactions as large as the singles, either sign, so they change the optimum.
      pt.loss = (U(rng) - 0.4) * (p.units[pt.ua].loss[pt.oa] + p.units[pt.ub].loss[pt.ob]);
      p.pairs.push_back(pt);
    }
    if (ip_matches_brute_force(p, trial)) ++checked;
  }
  EXPECT_GT(checked, 20);
}

// Additivity check and repair on a real fixture with a zero tolerance (so it always repairs):
// in-block pairs are measured with the table's instrument, the interaction is pair - singles,
// the re-solved plan still meets the budget, and the kept plan measures no worse than the first.
TEST(AllocCli, AdditivityRepairMeasuresInBlockPairsAndResolves) {
  auto r = test::run_cli({"quantize", test::fixture("fmnist-resnet"), "--calib", "fmnist:train:128", "--search", "ip",
                          "--budget-bits", "3", "--sens-samples", "128", "--additivity-tol", "0", "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  const auto& a = j["allocation"]["additivity"];
  ASSERT_TRUE(a.contains("rounds")) << a.dump();
  EXPECT_GE(a["rounds"].size(), 2u);
  ASSERT_FALSE(a["pairs"].empty());
  for (const auto& pr : a["pairs"]) {
    // Both layers of a pair sit in one residual block of this ResNet: /layers/layers.<i>/...
    const std::string l0 = pr["units"][0], l1 = pr["units"][1];
    EXPECT_EQ(l0.substr(0, l0.find('/', 16)), l1.substr(0, l1.find('/', 16))) << pr.dump();
    EXPECT_NEAR(pr["interaction"].get<double>(),
                pr["pair"].get<double>() - pr["singles"][0].get<double>() - pr["singles"][1].get<double>(), 1e-12);
  }
  EXPECT_LE(a["measured"].get<double>(), a["rounds"][0]["measured"].get<double>());
  EXPECT_LE(j["avg_wbits"].get<double>(), 3.0 + 1e-9);
  // With the default tolerance the same plan is only checked: one round, predicted and measured.
  r = test::run_cli({"quantize", test::fixture("fmnist-resnet"), "--calib", "fmnist:train:128", "--search", "ip",
                     "--budget-bits", "3", "--sens-samples", "128", "--repair-rounds", "0", "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["allocation"]["additivity"]["rounds"].size(), 1u);
  EXPECT_FALSE(j["allocation"]["additivity"]["changed"].get<bool>());
}

TEST(AllocCli, PlanFromTableMeetsBudgetsAndReportsInfeasibleOnes) {
  test::TempDir tmp;
  const std::string model = test::fixture("fmnist-mlp");
  auto r = test::run_cli({"pareto", model, "--calib", "fmnist:train:128", "--sens-samples", "128", "--pin-bits", "0",
                          "--table-out", tmp.file("t.json"), "-o", tmp.file("front.json"), "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto front = nlohmann::json::parse(test::read_file(tmp.file("front.json")));
  ASSERT_GT(front["points"].size(), 3u);
  // The budget is met in the plan's own accounting, and the plan loads back for `quantize --plan`.
  r = test::run_cli({"plan", "--from-table", tmp.file("t.json"), "--budget-bits", "3.5", "--budget-bytes", "120000",
                     "-o", tmp.file("p.json"), "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_LE(j["avg_wbits"].get<double>(), 3.5 + 1e-9);
  EXPECT_LE(j["size_bytes"].get<int64_t>(), 120000);
  auto plan = nlohmann::json::parse(test::read_file(tmp.file("p.json")));
  EXPECT_EQ(plan["search"], "ip");
  // Impossible budget: exit 0, a warning naming the minimum, the report holds it.
  r = test::run_cli({"plan", "--from-table", tmp.file("t.json"), "--budget-bits", "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("minimum feasible"), std::string::npos) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_NEAR(j["search_params"]["infeasible"][0]["minimum_feasible"].get<double>(), 2.0, 1e-9);
  // Bad inputs: one clear error, non-zero exit.
  test::write_file(tmp.file("bad.json"), "{\"mixq_sensitivity_version\": 1}");
  r = test::run_cli({"plan", "--from-table", tmp.file("bad.json"), "--budget-bits", "4"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("bad.json"), std::string::npos) << r.err;
  r = test::run_cli({"plan", "--from-table", tmp.file("t.json")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("give a budget"), std::string::npos) << r.err;
  r = test::run_cli({"plan", "--from-table", tmp.file("t.json"), "--budget-bits", "4", "--model", test::fixture("fmnist-resnet")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("another model"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mixq
