// The sensitivity probe's cut: a one-layer change re-run from the cached values before that layer
// must measure exactly what a whole-model run measures (MIXQ_PROBE_FULL=1), on residual and
// inverted-residual graphs and on a multi-output model without labels.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>

#include "api/allocate_step.h"
#include "data/dataset.h"
#include "search/probe.h"
#include "search/sensitivity.h"
#include "test_util.h"

namespace mixq::test {
namespace {

nlohmann::json table_layers(const std::string& model, const std::string& calib, bool full, int64_t max_memory_mb = 0) {
  PlanDefaults d;
  d.wbits = 8;
  PlanData data;
  data.calib = calib;
  PreparedPlan pp = prepare_plan(model, d, "minmax", data);
  for (auto& L : pp.plan.layers) L.pinned = false;
  SensitivityOptions so;
  so.samples = 48;
  so.batch_size = 16;  // several batches: the cut is cached per batch
  so.bits = {2, 5, 8};
  so.act_bits.clear();
  so.progress = false;
  so.max_memory_mb = max_memory_mb;
  if (full) setenv("MIXQ_PROBE_FULL", "1", 1);
  SensitivityTable t = measure_sensitivity(pp.prepared, pp.plan, pp.calib.get(), so);
  unsetenv("MIXQ_PROBE_FULL");
  nlohmann::json j = table_to_json(t)["layers"];
  for (auto& l : j) l.erase("seconds");
  return j;
}

// A fixture's W8 min-max plan on 48 training images, nothing pinned.
PreparedPlan unpinned_w8(const std::string& model) {
  PlanDefaults d;
  d.wbits = 8;
  PlanData data;
  data.calib = "fmnist:train:48";
  PreparedPlan pp = prepare_plan(model, d, "minmax", data);
  for (auto& L : pp.plan.layers) L.pinned = false;
  return pp;
}

TEST(ProbeCut, SameTableAsWholeModelRuns) {
  for (const std::string m : {"fmnist-resnet", "fmnist-mobilenetv2"}) {
    auto cut = table_layers(fixture(m), "fmnist:train:48", false);
    auto full = table_layers(fixture(m), "fmnist:train:48", true);
    ASSERT_FALSE(cut.empty());
    EXPECT_EQ(cut, full) << m;
  }
  const std::string wild = source_dir() + "/tests/fixtures/";
  auto cut = table_layers(wild + "wild-constant-dynamic.onnx", wild + "wild-a.npz", false);
  auto full = table_layers(wild + "wild-constant-dynamic.onnx", wild + "wild-a.npz", true);
  ASSERT_EQ(cut.size(), 4u);
  EXPECT_EQ(cut, full);
}

// Changes of several layers (the additivity check's pairs) run from the cut before the first of
// them, in cut order by run_changes: the same metrics as whole-model runs, in the order given.
TEST(ProbeCut, SeveralLayersFromTheFirstCutMatchWholeModelRuns) {
  PreparedPlan pp = unpinned_w8(fixture("fmnist-mobilenetv2"));
  SensitivityProbe probe(pp.prepared, pp.plan, *pp.calib, 16);
  const auto& ls = pp.plan.layers;
  std::vector<ProbeChange> changes;
  for (size_t i = 0; i + 3 < ls.size(); i += 2) {
    ProbeChange ch;
    ch.weights[ls[i + 3].name] = candidate_scheme(ls[i + 3], 3, 0);
    ch.weights[ls[i].name] = candidate_scheme(ls[i], 2, 0);
    changes.push_back(ch);
  }
  ASSERT_GE(changes.size(), 4u);
  std::reverse(changes.begin(), changes.end());  // last layers first: run_changes reorders
  std::vector<ProbeMetrics> cut = probe.run_changes(changes);
  setenv("MIXQ_PROBE_FULL", "1", 1);
  for (size_t i = 0; i < changes.size(); ++i) {
    ProbeMetrics full = probe.run_change(changes[i]);
    EXPECT_EQ(cut[i].noise, full.noise) << i;
    EXPECT_EQ(cut[i].kl, full.kl) << i;
    EXPECT_EQ(cut[i].loss, full.loss) << i;
    EXPECT_EQ(cut[i].top1, full.top1) << i;
  }
  unsetenv("MIXQ_PROBE_FULL");
  EXPECT_GT(cut[0].noise, probe.reference().noise);
}

// The cut's values spilled to a file (a zero budget: every dense value) give the same metrics
// as resident ones, on a residual graph whose cut values are channels-last activations; and the
// table with --max-memory (part spilled) equals the whole-model table.
TEST(ProbeCut, SpilledCutMeasuresTheSame) {
  PreparedPlan pp = unpinned_w8(fixture("fmnist-resnet"));
  SensitivityProbe resident(pp.prepared, pp.plan, *pp.calib, 16, -1);
  SensitivityProbe spilled(pp.prepared, pp.plan, *pp.calib, 16, 0);
  size_t n = 0;
  for (const auto& L : pp.plan.layers) {
    ProbeChange ch;
    ch.weights[L.name] = candidate_scheme(L, 3, 0);
    const ProbeMetrics a = resident.run_change(ch), b = spilled.run_change(ch);
    EXPECT_EQ(a.noise, b.noise) << L.name;
    EXPECT_EQ(a.kl, b.kl) << L.name;
    EXPECT_EQ(a.top1, b.top1) << L.name;
    if (spilled.cut_spilled_bytes() > 0) ++n;
    EXPECT_EQ(resident.cut_spilled_bytes(), 0);
  }
  EXPECT_GT(n, 0u);

  auto full = table_layers(fixture("fmnist-mobilenetv2"), "fmnist:train:48", true);
  auto limited = table_layers(fixture("fmnist-mobilenetv2"), "fmnist:train:48", false, 1);
  EXPECT_EQ(limited, full);
}

}  // namespace
}  // namespace mixq::test
