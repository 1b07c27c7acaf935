// LAPQ's two searches as plain numerics, free of models so they can be tested on known functions:
// the quadratic fit that picks p* from the calibration losses L(p) of the Lp-optimal clippings,
// and the joint derivative-free minimisation (NLopt's PRAXIS or BOBYQA) of a loss over a vector
// of clipping parameters, keeping the best point it ever evaluated.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mixq {

// Least-squares fit loss ~ a p^2 + b p + c over the finite points. p_star: the vertex -b / 2a
// clamped to [lo, hi] when the fit is convex (a > 0), else the grid point of lowest loss (also
// when fewer than 3 points are finite). from_fit says which of the two it is.
struct QuadraticFit {
  double a = 0, b = 0, c = 0;
  double p_star = 0;
  bool from_fit = false;
};
QuadraticFit fit_quadratic_min(const std::vector<double>& p, const std::vector<double>& loss, double lo, double hi);

// The derivative-free optimisers LAPQ can use, one row each (NLopt algorithm ids in the .cpp).
std::vector<std::string> joint_optimizer_names();  // "praxis", "bobyqa"

struct JointOptions {
  std::string optimizer = "praxis";
  int sweeps = 2;              // LAPQ's paper: 1-2 Powell iterations
  int64_t sweep_evals = 0;     // evaluations per sweep; 0 = 4 (n + 1) (about one pass of line
                               // searches along n directions; NLopt does not expose PRAXIS's
                               // iterations, so a sweep is this budget)
  int64_t max_evals = 0;       // total cap; 0 = sweeps x sweep_evals
  double lower = -2.3, upper = 1.0;  // bounds of every coordinate (LAPQ: log multipliers, x0.1..x2.7)
  double initial_step = 0.1;
  double xtol_rel = 1e-4;      // NLopt stops earlier when the steps become this small
  uint64_t seed = 0;           // PRAXIS's random restarts of its line searches (nlopt_srand)
  // Called after every sweep: (sweep, evaluations so far, loss of the last point, best loss).
  std::function<void(int, int64_t, double, double)> on_sweep;
  // Polled before each evaluation; true stops the search (Ctrl-C), which keeps the best so far.
  std::function<bool()> stop;
};

struct JointResult {
  std::vector<double> x;       // best point evaluated (x0 when nothing beat it)
  double loss_start = 0, loss_best = 0;
  int64_t evals = 0;           // including the evaluation of x0
  std::vector<double> sweep_best;  // best loss at the end of each sweep
  std::string stop_reason;     // NLopt's result, or "interrupted"
  bool interrupted = false;
};

// Minimises f from x0 (every coordinate of x0 inside [lower, upper]). x0 is evaluated first, so
// loss_best <= loss_start always: the search never returns a point worse than its start.
// Throws kInvalidArgument on an unknown optimizer or a bad budget.
JointResult minimize_joint(const std::function<double(const std::vector<double>&)>& f, const std::vector<double>& x0,
                           const JointOptions& opts);

}  // namespace mixq
