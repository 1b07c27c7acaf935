// LAPQ's searches (Nahshan et al., "Loss aware post-training quantization", 2019/2021): the
// quadratic fit of L(p) and the joint Powell-family minimisation. Powell's method is not written
// here: NLopt (libnlopt-dev) provides PRAXIS (Brent's principal-axis variant of Powell's
// conjugate directions) and Powell's BOBYQA.
#include "quant/methods/lapq_search.h"

#include <nlopt.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <utility>

#include "mixq/error.h"

namespace mixq {

namespace {

struct OptimizerRow {
  const char* name;
  nlopt_algorithm algorithm;
};
// Both take bounds; PRAXIS rejects points outside them, BOBYQA never leaves them.
constexpr OptimizerRow kOptimizers[] = {
    {"praxis", NLOPT_LN_PRAXIS},
    {"bobyqa", NLOPT_LN_BOBYQA},
};

const OptimizerRow& find_optimizer(const std::string& name) {
  for (const auto& r : kOptimizers)
    if (name == r.name) return r;
  std::string all;
  for (const auto& r : kOptimizers) all += std::string(all.empty() ? "" : ", ") + r.name;
  throw Error(ErrorKind::kInvalidArgument, "unknown LAPQ optimizer '" + name + "'; choose one of: " + all);
}

// Solves the 3x3 system m x = v by Gaussian elimination with partial pivoting; false if singular.
bool solve3(double m[3][3], double v[3], double x[3]) {
  for (int c = 0; c < 3; ++c) {
    int piv = c;
    for (int r = c + 1; r < 3; ++r)
      if (std::fabs(m[r][c]) > std::fabs(m[piv][c])) piv = r;
    if (std::fabs(m[piv][c]) < 1e-300) return false;
    std::swap(m[c], m[piv]);
    std::swap(v[c], v[piv]);
    for (int r = c + 1; r < 3; ++r) {
      const double f = m[r][c] / m[c][c];
      for (int k = c; k < 3; ++k) m[r][k] -= f * m[c][k];
      v[r] -= f * v[c];
    }
  }
  for (int r = 2; r >= 0; --r) {
    double s = v[r];
    for (int k = r + 1; k < 3; ++k) s -= m[r][k] * x[k];
    x[r] = s / m[r][r];
  }
  return true;
}

// The state NLopt's callback sees.
struct Search {
  const std::function<double(const std::vector<double>&)>* f = nullptr;
  const JointOptions* opts = nullptr;
  nlopt_opt opt = nullptr;
  int64_t sweep_evals = 0;
  JointResult* res = nullptr;
  std::vector<double> x0;
  bool x0_pending = true;  // NLopt's first evaluation is x0 again: answer it from the cache
  std::exception_ptr error;
};

double objective(unsigned n, const double* x, double*, void* data) {
  auto* s = static_cast<Search*>(data);
  std::vector<double> xv(x, x + n);
  if (s->x0_pending && xv == s->x0) {
    s->x0_pending = false;
    return s->res->loss_start;
  }
  s->x0_pending = false;
  if (s->opts->stop && s->opts->stop()) {
    s->res->interrupted = true;
    nlopt_force_stop(s->opt);
    return std::numeric_limits<double>::infinity();
  }
  double v;
  try {
    v = (*s->f)(xv);
  } catch (...) {
    s->error = std::current_exception();
    nlopt_force_stop(s->opt);
    return std::numeric_limits<double>::infinity();
  }
  JointResult& r = *s->res;
  ++r.evals;
  if (v < r.loss_best) {
    r.loss_best = v;
    r.x = xv;
  }
  // evals counts x0 as the first one; sweep k ends after 1 + k * sweep_evals.
  if ((r.evals - 1) % s->sweep_evals == 0) {
    r.sweep_best.push_back(r.loss_best);
    if (s->opts->on_sweep) s->opts->on_sweep(static_cast<int>(r.sweep_best.size()), r.evals, v, r.loss_best);
  }
  // NaN (a diverged model) must not look attractive to the optimiser.
  return std::isfinite(v) ? v : std::numeric_limits<double>::max();
}

const char* result_name(nlopt_result r) {
  switch (r) {
    case NLOPT_SUCCESS: return "success";
    case NLOPT_STOPVAL_REACHED: return "stopval reached";
    case NLOPT_FTOL_REACHED: return "ftol reached";
    case NLOPT_XTOL_REACHED: return "xtol reached (converged)";
    case NLOPT_MAXEVAL_REACHED: return "evaluation budget reached";
    case NLOPT_MAXTIME_REACHED: return "time budget reached";
    case NLOPT_ROUNDOFF_LIMITED: return "roundoff limited";
    case NLOPT_FORCED_STOP: return "stopped";
    case NLOPT_OUT_OF_MEMORY: return "out of memory";
    case NLOPT_INVALID_ARGS: return "invalid arguments";
    default: return "failure";
  }
}

}  // namespace

QuadraticFit fit_quadratic_min(const std::vector<double>& p, const std::vector<double>& loss, double lo, double hi) {
  MIXQ_ASSERT(p.size() == loss.size() && !p.empty() && lo <= hi, "fit_quadratic_min: bad arguments");
  QuadraticFit q;
  size_t best = p.size();
  for (size_t i = 0; i < p.size(); ++i)
    if (std::isfinite(loss[i]) && (best == p.size() || loss[i] < loss[best])) best = i;
  q.p_star = best < p.size() ? p[best] : std::clamp(p[0], lo, hi);
  // Normal equations in t = p - centre (the monomials 1, p, p^2 are nearly collinear on [2, 4]).
  double centre = 0;
  int n = 0;
  for (size_t i = 0; i < p.size(); ++i)
    if (std::isfinite(loss[i])) centre += p[i], ++n;
  if (n < 3) return q;
  centre /= n;
  double m[3][3] = {}, v[3] = {}, x[3];
  for (size_t i = 0; i < p.size(); ++i) {
    if (!std::isfinite(loss[i])) continue;
    const double t = p[i] - centre, basis[3] = {t * t, t, 1.0};
    for (int r = 0; r < 3; ++r) {
      for (int c = 0; c < 3; ++c) m[r][c] += basis[r] * basis[c];
      v[r] += basis[r] * loss[i];
    }
  }
  if (!solve3(m, v, x)) return q;
  // Back from t to p: a t^2 + b' t + c' with t = p - centre.
  q.a = x[0];
  q.b = x[1] - 2 * x[0] * centre;
  q.c = x[2] - x[1] * centre + x[0] * centre * centre;
  if (q.a > 0) {
    q.p_star = std::clamp(-q.b / (2 * q.a), lo, hi);
    q.from_fit = true;
  }
  return q;
}

std::vector<std::string> joint_optimizer_names() {
  std::vector<std::string> n;
  for (const auto& r : kOptimizers) n.push_back(r.name);
  return n;
}

JointResult minimize_joint(const std::function<double(const std::vector<double>&)>& f, const std::vector<double>& x0,
                           const JointOptions& opts) {
  const OptimizerRow& row = find_optimizer(opts.optimizer);
  MIXQ_CHECK(opts.sweeps >= 1, ErrorKind::kInvalidArgument, "LAPQ: sweeps ", opts.sweeps, " must be >= 1");
  MIXQ_CHECK(opts.sweep_evals >= 0 && opts.max_evals >= 0, ErrorKind::kInvalidArgument,
             "LAPQ: evaluation budgets must be >= 0 (0 = automatic)");
  MIXQ_CHECK(opts.lower < 0 && opts.upper > 0, ErrorKind::kInvalidArgument, "LAPQ: bounds [", opts.lower, ", ",
             opts.upper, "] must contain 0 (the starting point)");
  const unsigned n = static_cast<unsigned>(x0.size());
  JointResult r;
  r.x = x0;
  r.loss_start = r.loss_best = f(x0);
  r.evals = 1;
  if (n == 0) {
    r.stop_reason = "nothing to optimise";
    return r;
  }
  Search s;
  s.f = &f;
  s.opts = &opts;
  s.res = &r;
  s.x0 = x0;
  s.sweep_evals = opts.sweep_evals > 0 ? opts.sweep_evals : 4 * (static_cast<int64_t>(n) + 1);
  const int64_t total = opts.max_evals > 0 ? opts.max_evals : opts.sweeps * s.sweep_evals;
  // BOBYQA needs at least 2 variables; PRAXIS handles one.
  s.opt = nlopt_create(n == 1 ? NLOPT_LN_PRAXIS : row.algorithm, n);
  MIXQ_CHECK(s.opt != nullptr, ErrorKind::kInternal, "NLopt could not create the ", row.name, " optimizer");
  std::vector<double> lb(n, opts.lower), ub(n, opts.upper), x = x0;
  nlopt_srand(opts.seed);  // PRAXIS draws random line-search restarts from NLopt's global generator
  nlopt_set_lower_bounds(s.opt, lb.data());
  nlopt_set_upper_bounds(s.opt, ub.data());
  nlopt_set_min_objective(s.opt, objective, &s);
  // NLopt's own count includes its re-evaluation of x0, answered from the cache above.
  nlopt_set_maxeval(s.opt, static_cast<int>(std::min<int64_t>(total, std::numeric_limits<int>::max() - 1)));
  nlopt_set_xtol_rel(s.opt, opts.xtol_rel);
  nlopt_set_initial_step1(s.opt, opts.initial_step);
  double fmin = 0;
  const nlopt_result res = nlopt_optimize(s.opt, x.data(), &fmin);
  nlopt_destroy(s.opt);
  if (s.error) std::rethrow_exception(s.error);
  r.stop_reason = r.interrupted ? "interrupted" : result_name(res);
  if (r.sweep_best.empty() || (r.evals - 1) % s.sweep_evals != 0) {  // a last, partial sweep
    r.sweep_best.push_back(r.loss_best);
    if (opts.on_sweep) opts.on_sweep(static_cast<int>(r.sweep_best.size()), r.evals, r.loss_best, r.loss_best);
  }
  return r;
}

}  // namespace mixq
