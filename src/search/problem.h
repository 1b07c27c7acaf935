// The allocation problem every table-driven allocator solves, in one form: a list of *units*
// (one layer, or a group of layers a hardware spec makes share one precision; a pinned layer is a
// unit with one option; or an activation tensor shared by the layers reading it), each choosing
// exactly one option (weight bits at the plan's granularity or per group; activation bits) with
// an additive objective and additive constraint coefficients, plus pair terms for what depends on
// two units at once (a layer's BOPs on its weight and its input bits; measured interactions):
//   minimise    sum_u obj[u][choice_u] + sum_pairs loss
//   subject to  sum_u coef_k[u][choice_u] + sum_pairs coef_k <= limit_k   for every constraint k.
// With a size-like budget the objective is the predicted sensitivity (signal) and the budgets are
// constraints; with Budget::max_drop the objective is the size in bits and the predicted
// sensitivity is a constraint. Solvers (ip.cpp, pareto.cpp, genetic.cpp) only see this struct,
// so they can be tested on random tables against brute force.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "quant/plan.h"
#include "search/budget.h"

namespace mixq {

struct HwSpec;
struct SensitivityTable;
struct LatencyTable;

// One choice of the allocation problem: layers that share a precision and their options, the
// cheapest first (stored size; activation units: bits ascending).
struct ChoiceUnit {
  std::vector<int> layers;  // indices into plan.layers (activation units: the reading layers)
  std::vector<int> bits;    // per option: weight bits, or activation bits for activation units
  std::vector<int64_t> group;  // per option: weight group size, 0 for the plan's own granularity
  std::string act;          // activation units: the tensor; empty for weight units
  std::vector<double> obj;  // per option
  std::vector<double> loss; // predicted sensitivity per option (the signal), for reports
  std::vector<double> size_bits;  // per option: the unit's stored bits (for curves)
  bool fixed() const { return bits.size() == 1; }
  bool is_act() const { return !act.empty(); }
};

struct Constraint {
  std::string name;      // "avg_wbits", "size_bytes", "bops", "latency_ms", "max_drop"
  double limit = 0;      // in coefficient units, fixed parts already subtracted
  std::vector<std::vector<double>> coef;  // [unit][option]
  // Converts a coefficient sum back to the user's units (e.g. bits -> bytes incl. fixed parts).
  std::function<double(double)> to_user;
};

// A measured interaction: when unit `ua` takes option `oa` and unit `ub` option `ob`, the
// predicted sensitivity is off by `loss` from the sum of the two single-layer entries (measured
// pair minus both singles). Added by the additivity repair (search/additivity.h); it counts
// wherever the sensitivity counts: the objective ("loss") or the max_drop constraint.
// The same form carries what a constraint charges for a combination: `coef[k]` is added to
// constraint k's sum (a layer's BOPs = MACs x its weight bits x its input bits, when the input is
// an activation unit of its own).
struct PairTerm {
  int ua = 0, oa = 0, ub = 0, ob = 0;
  double loss = 0;
  std::vector<double> coef;  // per constraint (same order as Problem::constraints); empty: none
};

struct Problem {
  std::vector<ChoiceUnit> units;
  std::vector<Constraint> constraints;
  std::vector<PairTerm> pairs;
  std::string objective = "loss";  // "loss" or "size_bits"
  std::string signal;
  std::vector<QScheme> base_weight;  // per plan layer: the weight scheme options start from
};

using Choice = std::vector<int>;  // option index per unit

// Builds the problem from a plan (its pinned layers and defaults), the sensitivity table (null:
// every option predicts 0, for allocators that measure instead), the signal name, shared-precision
// groups (sets of plan layer indices; layers in no group are alone), an optional hardware spec
// (allowed bits) and latency table. Signals are made monotone per layer (fewer bits never predict
// less loss; a lower measured value is calibration noise). Options:
//  * weight bits the table measured (all of 2-8 without a table), within the spec;
//  * per-group options where the table measured them, the spec allows per_group and they predict
//    less loss than the plan's granularity at the same bits (they cost scale bytes);
//  * activation units where they change a constraint: with a BOPs budget and a table with a data
//    signal, the table's activation candidates; without a table (HAGO), the spec's activation
//    bits up to the plan's. Not with a latency budget (the latency table is per weight bits).
// The avg_wbits constraint counts a per-group option's extra scale bits as weight bits, so a bits
// budget is not met by trading bits for metadata. Throws kInvalidArgument when a layer of the
// plan is missing from the table, the spec leaves a group no common bit-width, or a latency
// budget comes without a latency table.
Problem build_problem(const QuantPlan& plan, const SensitivityTable* table, const std::string& signal,
                      const Budget& budget, const std::vector<std::vector<int>>& groups, const HwSpec* hw,
                      const LatencyTable* latency);

double objective(const Problem& p, const Choice& c);
// Sum of the pair terms whose two options `c` takes.
double pair_sum(const Problem& p, const Choice& c);
double constraint_sum(const Constraint& k, const Choice& c);  // unit coefficients only
// Constraint k's full sum: units, pair coefficients, and for max_drop the pair losses.
double constraint_total(const Problem& p, size_t k, const Choice& c);
// What pair term t adds to constraint k when both its options are chosen.
double pair_coef(const Problem& p, const PairTerm& t, size_t k);
bool feasible(const Problem& p, const Choice& c, double slack = 1e-9);
// Total violation of the constraints, each relative to its limit (0 when feasible).
double violation(const Problem& p, const Choice& c);
// The choice with every unit at its lowest (index 0) or highest option.
Choice lowest_choice(const Problem& p);
Choice highest_choice(const Problem& p);

// Writes the chosen bits (and granularity, activation bits) into the plan's layers and recomputes
// its cost.
void apply_choice(const Problem& p, const Choice& c, QuantPlan& plan);
// Sum of the units' predicted sensitivity (signal units) under a choice.
double predicted_loss(const Problem& p, const Choice& c);

// When no choice meets every constraint: for each constraint the requested limit and the
// minimum achievable (user units), and the layers that bind (pinned layers, layers the spec keeps
// above 2 bits, largest share of the violated quantity first). Null when the lowest (highest for
// max_drop) choice is feasible for each constraint on its own.
nlohmann::json infeasibility(const Problem& p, const QuantPlan& plan);
// The choice to fall back to when infeasible: the one that comes closest (every unit at its
// cheapest option for size-like budgets; every unit at its most accurate for max_drop).
Choice fallback_choice(const Problem& p);

// Records the outcome of a solver in the plan: bits, cost, budget, search params, and when the
// budget cannot be met, the infeasibility report (also printed as a warning).
void finish_plan(const Problem& p, const Choice& c, const std::string& search, nlohmann::json params,
                 const Budget& budget, QuantPlan& plan);

// Budget from the options: budget_avg_wbits folded into Budget::avg_wbits.
Budget effective_budget(const Budget& b, double budget_avg_wbits);

}  // namespace mixq
