// The size x BOPs x predicted-accuracy front of a sensitivity table: the greedy Pareto curve plus
// integer-program optima on a grid of average weight bits and, when the table has activation
// candidates, on a grid of BOPs budgets (weight and activation bits trading against each other).
// Shared by `mixq pareto` and the HTML report (api/report_html.h).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "quant/plan.h"
#include "search/hw_spec.h"
#include "search/problem.h"
#include "search/sensitivity.h"

namespace mixq {

// One point: source, avg_wbits, size_bytes, bops, predicted_dl / _kl / _top1 (every signal from
// the same choice), bits and abits per layer.
nlohmann::json front_point(const Problem& p, const Choice& c, QuantPlan plan, const SensitivityTable& t,
                           const std::string& source);

// Every point of the front, for `plan` (the reference plan the table was measured on) under
// `signal`; `groups` are layers sharing bits (hardware spec), `hw` the allowed bits (or null).
nlohmann::json pareto_front(const QuantPlan& plan, const SensitivityTable& t, const std::string& signal,
                            const std::vector<std::vector<int>>& groups, const HwSpec* hw, double grid_step);

}  // namespace mixq
