// Additivity check and repair for table-driven plans (ip, genetic). The sensitivity table
// predicts a plan's loss as the sum of single-layer increases; layers inside one block interact
// (two 2-bit convolutions of a residual block hurt more, or less, than their sum). After
// allocation we measure the whole plan with the table's own instrument (search/probe.h: same
// samples, same reference plan, so the numbers are comparable to the table's). If measured and
// predicted differ by more than the tolerance, we measure the worst pairs of reduced layers inside
// one block (graph/blocks.h units; "worst": largest sum of their single entries), add each pair's
// interaction (pair - both singles) to the problem as a pair term and re-solve with the same
// solver; repeated for a few rounds, keeping the plan whose *measured* loss is lowest.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <optional>

#include "search/allocator.h"
#include "search/problem.h"
#include "search/sensitivity.h"

namespace mixq {

struct RepairOptions {
  // Repair when |measured - predicted| > tolerance * max(|measured|, |predicted|) (both in the
  // allocation signal's units, increases over the reference plan).
  double tolerance = 0.2;
  int max_pairs = 8;   // pairs measured per round
  int rounds = 2;      // re-solves at most
};

using Resolver = std::function<std::optional<Choice>(const Problem&)>;

// `base`: the plan before allocation (the table's plan); `calib`: the calibration set the table
// was measured on (its first table.samples samples are used). Rewrites ctx.plan's bits when a
// repaired plan measures better. Returns the report: signal, predicted and measured per round,
// the pairs measured with their interactions, and whether the plan changed. Signals that are not
// measured on data (mse, fisher, hessian) are reported as skipped. `probe`: the probe the table
// was measured with (measure_sensitivity's keep_probe), reused; null builds one.
nlohmann::json check_and_repair(AllocContext& ctx, const SensitivityTable& table, const QuantPlan& base,
                                const Dataset& calib, const Resolver& resolve, const RepairOptions& opts,
                                SensitivityProbe* probe = nullptr);

}  // namespace mixq
