// Granularity and activation candidates in allocation: the integer program with activation units
// (BOPs as pair terms) and per-group options equals brute force, plans from every solver meet
// BOPs and byte budgets as update_cost counts them, and on a real fixture the sensitivity table
// measures activation and group candidates that a BOPs-budgeted plan then uses.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <random>

#include "alloc_util.h"
#include "test_util.h"

namespace mixq {
namespace {

// A synthetic plan where layers 3 and 4 read one tensor (shared activation), with a table that
// has weight bits {2, 4, 8} (small enough for brute force), group-16 entries that predict less
// loss at more bytes, and 4-bit activation entries for every tensor of unpinned readers.
struct Candidates {
  QuantPlan plan;
  SensitivityTable table;
};

Candidates candidate_problem(int n, std::mt19937_64& rng, bool pin_first) {
  Candidates c;
  c.plan = test::synthetic_plan(n, rng, pin_first);
  if (n > 4) c.plan.layers[4].input = c.plan.layers[3].input;
  update_cost(c.plan);
  c.table = test::synthetic_table(c.plan, rng);
  std::uniform_real_distribution<double> U(0, 1);
  for (auto& ls : c.table.layers) {
    for (int b : {3, 5, 6, 7}) ls.bits.erase(b);
    for (const auto& [b, e] : ls.bits) {
      SensEntry g = e;
      g.dl = g.kl = e.dl * (0.3 + 0.5 * U(rng));
      ls.groups[16][b] = g;
    }
  }
  std::map<std::string, ActSens> acts;
  for (const auto& L : c.plan.layers) {
    if (L.pinned) continue;
    ActSens& a = acts[L.input];
    a.tensor = L.input;
    a.layers.push_back(L.name);
    a.bits[8] = SensEntry{};
    SensEntry e;
    e.dl = e.kl = 0.02 * U(rng);
    a.bits[4] = e;
  }
  for (auto& [t, a] : acts) c.table.acts.push_back(a);
  return c;
}

TEST(IntegerProgram, ActivationAndGroupCandidatesMatchBruteForce) {
  std::mt19937_64 rng(5);
  int checked = 0, with_acts = 0, with_groups = 0;
  for (int trial = 0; trial < 24; ++trial) {
    Candidates c = candidate_problem(5, rng, trial % 2 == 0);
    Budget b;
    std::uniform_real_distribution<double> U(0, 1);
    switch (trial % 3) {
      case 0: b.bops = c.plan.cost.bops * (0.15 + 0.5 * U(rng)); break;
      case 1: b.bops = c.plan.cost.bops * (0.2 + 0.5 * U(rng)); b.bytes = int64_t(c.plan.cost.size_bytes * 0.5); break;
      case 2: b.bytes = static_cast<int64_t>(c.plan.cost.size_bytes * (0.25 + 0.5 * U(rng))); break;
    }
    Problem p = build_problem(c.plan, &c.table, "dl", b, {}, nullptr, nullptr);
    for (const auto& u : p.units) {
      with_acts += u.is_act();
      for (int64_t g : u.group) with_groups += g > 0;
    }
    // Activation units exist exactly when a BOPs budget makes activation bits matter.
    bool any_act = false;
    for (const auto& u : p.units) any_act = any_act || u.is_act();
    EXPECT_EQ(any_act, b.bops > 0) << "trial " << trial;
    if (test::ip_matches_brute_force(p, trial)) ++checked;
  }
  EXPECT_GT(checked, 15);
  EXPECT_GT(with_acts, 0);
  EXPECT_GT(with_groups, 0);
}

// A table measured with candidates serves runs that ask for fewer: without activation bits the
// problem has no activation units, without group sizes no per-group options.
TEST(Allocators, TableCandidatesCanBeNarrowedPerRun) {
  std::mt19937_64 rng(13);
  Candidates c = candidate_problem(6, rng, true);
  Budget b;
  b.bops = c.plan.cost.bops * 0.5;
  auto count = [&](const SensitivityTable& t) {
    std::pair<int, int> n{0, 0};
    for (const auto& u : build_problem(c.plan, &t, "dl", b, {}, nullptr, nullptr).units) {
      n.first += u.is_act();
      for (int64_t g : u.group) n.second += g > 0;
    }
    return n;
  };
  EXPECT_GT(count(c.table).first, 0);
  EXPECT_GT(count(c.table).second, 0);
  auto none = count(with_candidates(c.table, {}, {}));
  EXPECT_EQ(none.first, 0);
  EXPECT_EQ(none.second, 0);
  auto other = count(with_candidates(c.table, {4, 8}, {32}));  // group 16 was measured, 32 was not
  EXPECT_GT(other.first, 0);
  EXPECT_EQ(other.second, 0);
}

// A plan whose base granularity is already per-group (`--granularity per_group`) was measured
// at that granularity: its prediction comes from the table's `bits`, while a group-candidate
// option of a per-channel plan comes from `groups`.
TEST(Sensitivity, PredictionForPerGroupBasePlanUsesMeasuredBits) {
  std::mt19937_64 rng(21);
  Candidates c = candidate_problem(4, rng, false);
  double channel = predicted_signal(c.table, c.plan, "dl");
  QuantPlan q = c.plan;
  for (auto& L : q.layers) {
    L.weight_scheme.bits = 4;
    L.input_scheme.bits = 8;
  }
  const double at4 = predicted_signal(c.table, q, "dl");
  EXPECT_GT(at4, channel);
  for (auto& L : q.layers) {
    L.weight_scheme.granularity = Granularity::kPerGroup;
    L.weight_scheme.group_size = 64;  // not a measured candidate: the table's bits describe it
  }
  EXPECT_DOUBLE_EQ(predicted_signal(c.table, q, "dl"), at4);
  double from_groups = 0;
  for (auto& L : q.layers) L.weight_scheme.group_size = 16;  // a measured candidate
  for (const auto& ls : c.table.layers) from_groups += ls.groups.at(16).at(4).dl;
  EXPECT_NEAR(predicted_signal(c.table, q, "dl"), from_groups, 1e-12);
}

TEST(Allocators, PlansWithCandidatesMeetBopsAndBytesAsCounted) {
  std::mt19937_64 rng(9);
  int checked = 0;
  for (int trial = 0; trial < 12; ++trial) {
    Candidates c = candidate_problem(10, rng, true);
    Budget b;
    b.bops = c.plan.cost.bops * (0.3 + 0.05 * trial);
    b.bytes = static_cast<int64_t>(c.plan.cost.size_bytes * 0.6);
    Problem p = build_problem(c.plan, &c.table, "dl", b, {}, nullptr, nullptr);
    if (!feasible(p, lowest_choice(p))) continue;  // the pinned layer alone is over the budget
    ++checked;
    GeneticOptions go;
    go.seed = trial;
    std::vector<std::pair<std::string, std::optional<Choice>>> sols = {{"ip", solve_ip(p)},
                                                                       {"genetic", solve_genetic(p, go)}};
    for (const auto& pc : pareto_curve(p))
      if (feasible(p, pc)) {
        sols.emplace_back("pareto", pc);
        break;
      }
    ASSERT_EQ(sols.size(), 3u) << "trial " << trial;
    for (auto& [name, ch] : sols) {
      ASSERT_TRUE(ch.has_value()) << name << " trial " << trial;
      QuantPlan q = c.plan;
      apply_choice(p, *ch, q);
      EXPECT_LE(q.cost.bops, b.bops * (1 + 1e-9)) << name;
      EXPECT_LE(q.cost.size_bytes, b.bytes) << name;
      EXPECT_EQ(q.layers[3].input_scheme.bits, q.layers[4].input_scheme.bits) << name << ": shared tensor split";
      EXPECT_EQ(q.layers[0].input_scheme.bits, 8) << name << ": pinned layer's input moved";
      // The problem's prediction is the table's for the plan it writes, raised where the monotone fix
      // (fewer bits never predict less) replaced a noisy entry.
      EXPECT_GE(predicted_loss(p, *ch), predicted_signal(c.table, q, "dl") - 1e-9) << name;
      if (name != "ip") {
        EXPECT_GE(objective(p, *ch), objective(p, *sols[0].second) - 1e-12) << name;
      }
    }
  }
  EXPECT_GE(checked, 6);
}

// Real fixture: activation and group candidates are measured (4-bit activations of a ReLU
// output hurt, group-16 weights at 2 bits hurt less than per-channel), the table round-trips
// through its file, `mixq pareto`'s front has BOPs points that use them, and an IP plan under a BOPs budget below uniform W4A8 lowers some
// activations, meets the budget and is reported with its per-layer activation bits.
TEST(AllocCli, ActivationAndGroupCandidatesOnTheResNet) {
  test::TempDir tmp;
  const std::string model = test::fixture("fmnist-resnet"), table = tmp.file("t.json");
  auto r = test::run_cli({"pareto", model, "--calib", "fmnist:train:128", "--sens-samples", "128", "--table-out", table,
                          "--group-candidates", "16", "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  {
    // The front has BOPs points, and the lower ones quantize some inputs at 4 bits.
    const auto front = nlohmann::json::parse(r.out);
    int bops_points = 0, with_a4 = 0;
    for (const auto& pt : front["points"]) {
      if (pt["source"].get<std::string>().rfind("ip-bops@", 0) != 0) continue;
      ++bops_points;
      bool a4 = false;
      for (const auto& [layer, a] : pt["abits"].items()) a4 = a4 || a.get<int>() == 4;
      with_a4 += a4;
    }
    EXPECT_GT(bops_points, 5);
    EXPECT_GT(with_a4, 0);
  }
  SensitivityTable t = load_table(table);
  ASSERT_FALSE(t.acts.empty());
  for (const auto& a : t.acts) {
    EXPECT_EQ(a.ref_bits, 8);
    ASSERT_TRUE(a.bits.count(4)) << a.tensor;
    EXPECT_GT(a.bits.at(4).kl, 0) << a.tensor;
    EXPECT_EQ(a.bits.at(8).kl, 0) << a.tensor;
  }
  int better = 0, groups = 0;
  for (const auto& l : t.layers)
    if (auto g = l.groups.find(16); g != l.groups.end()) {
      ++groups;
      better += g->second.at(2).mse < l.bits.at(2).mse;
    }
  EXPECT_GT(groups, 0);
  EXPECT_EQ(better, groups) << "group-16 weights should have less roundoff than per-channel at 2 bits";

  // BOPs of uniform W4A8, minus 20%: reachable only by lowering something below 4/8.
  r = test::run_cli({"quantize", model, "--calib", "fmnist:train:128", "--wbits", "4", "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const double bops = nlohmann::json::parse(r.out)["bops"].get<double>() * 0.8;
  r = test::run_cli({"plan", "--from-table", table, "--budget-bops", std::to_string(bops), "-o", tmp.file("p.json"),
                     "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LE(nlohmann::json::parse(r.out)["bops"].get<double>(), bops * (1 + 1e-9));
  auto plan = nlohmann::json::parse(test::read_file(tmp.file("p.json")));
  int a4 = 0;
  for (const auto& L : plan["layers"])
    if (!L["input_quant"].is_null()) a4 += L["input_quant"]["bits"].get<int>() == 4;
  EXPECT_GT(a4, 0) << plan.dump();
}

// HAGO under a budget its greedy pass misses: further passes relax the tolerance until the plan
// fits, and the report lists them.
TEST(AllocCli, HagoMeetsABudgetByRelaxingItsTolerance) {
  auto r = test::run_cli({"quantize", test::fixture("fmnist-resnet"), "--calib", "fmnist:train:128", "--sens-samples",
                          "128", "--search", "hago", "--budget-bits", "3", "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_LE(j["avg_wbits"].get<double>(), 3.0 + 1e-9);
  const auto& passes = j["search_params"]["passes"];
  ASSERT_GE(passes.size(), 2u) << j["search_params"].dump();
  EXPECT_FALSE(passes[0]["fits_budget"].get<bool>());
  EXPECT_TRUE(passes.back()["fits_budget"].get<bool>());
  EXPECT_GT(passes.back()["tolerance_points"].get<double>(), passes[0]["tolerance_points"].get<double>());
  EXPECT_FALSE(j["search_params"].contains("infeasible"));
}

// HAGO's activation edges: a W4A8 spec keeps every activation at 8 bits and weights at 4 or 8; a
// spec allowing 2-8 bit activations lets the greedy lower some edges within a 1-point tolerance.
TEST(AllocCli, HagoSearchesActivationEdgesTheSpecAllows) {
  const std::string model = test::fixture("fmnist-resnet");
  auto r = test::run_cli({"quantize", model, "--calib", "fmnist:train:128", "--sens-samples", "128", "--search", "hago",
                          "--hw", test::source_dir() + "/hw/w4a8-accel.json", "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto w4a8 = nlohmann::json::parse(r.out);
  for (const auto& L : w4a8["layers"]) {
    EXPECT_EQ(L["abits"].get<int>(), 8) << L.dump();
    EXPECT_TRUE(L["wbits"].get<int>() == 4 || L["wbits"].get<int>() == 8) << L.dump();
  }
  r = test::run_cli({"quantize", model, "--calib", "fmnist:train:128", "--sens-samples", "128", "--search", "hago",
                     "--hw", test::source_dir() + "/hw/any-2-8.json", "--max-drop", "1", "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto any = nlohmann::json::parse(r.out);
  int lowered = 0;
  for (const auto& L : any["layers"]) lowered += L["abits"].get<int>() < 8;
  EXPECT_GT(lowered, 0);
}

}  // namespace
}  // namespace mixq
