// Integer-programming allocator (seed 003, Hubara et al., "Accurate Post Training Quantization
// with Small Calibration Sets", AdaQuant + IP): binary x(l, b), exactly one bit-width per layer
// (per shared-precision group); minimise the sum of the measured per-layer sensitivity subject to
// any combination of size / BOPs / latency budgets, or (with --max-drop) minimise the stored size
// subject to the predicted sensitivity sum. Solved exactly with CBC (coinor-libcbc-dev) through
// its C interface. Additivity of per-layer effects is the method's assumption; the job reports
// predicted vs measured so its error is visible.
#include <coin/Cbc_C_Interface.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <string>

#include "core/log.h"
#include "mixq/error.h"
#include "search/allocator.h"
#include "search/context.h"
#include "search/solvers.h"

namespace mixq {

std::optional<Choice> solve_ip(const Problem& p, double max_seconds) {
  std::unique_ptr<Cbc_Model, void (*)(Cbc_Model*)> m(Cbc_newModel(), Cbc_deleteModel);
  Cbc_setLogLevel(m.get(), 0);
  Cbc_setMaximumSeconds(m.get(), max_seconds);
  // Objective scale: CBC's tolerances are absolute; bring the largest objective term to ~1e3.
  double scale = 0;
  for (const auto& u : p.units)
    for (double v : u.obj) scale = std::max(scale, std::fabs(v));
  scale = scale > 0 ? 1e3 / scale : 1;
  std::vector<std::vector<int>> col(p.units.size());
  int n = 0;
  for (size_t u = 0; u < p.units.size(); ++u)
    for (size_t o = 0; o < p.units[u].bits.size(); ++o) {
      std::string name = "x" + std::to_string(u) + "_" + std::to_string(o);
      Cbc_addCol(m.get(), name.c_str(), 0, 1, p.units[u].obj[o] * scale, 1, 0, nullptr, nullptr);
      col[u].push_back(n++);
    }
  for (size_t u = 0; u < p.units.size(); ++u) {
    std::vector<double> ones(col[u].size(), 1.0);
    Cbc_addRow(m.get(), ("one" + std::to_string(u)).c_str(), static_cast<int>(col[u].size()), col[u].data(),
               ones.data(), 'E', 1.0);
  }
  // Pair terms (additivity repair): y = x[ua][oa] AND x[ub][ob], linearised. A positive term
  // needs y >= xa + xb - 1 (the solver wants y low), a negative one y <= xa, y <= xb (it wants
  // y high); with binary x, y is then exactly the product.
  std::vector<int> ycol;
  for (size_t t = 0; t < p.pairs.size(); ++t) {
    const PairTerm& pt = p.pairs[t];
    const double w = p.objective == "loss" ? pt.loss * scale : 0;
    Cbc_addCol(m.get(), ("y" + std::to_string(t)).c_str(), 0, 1, w, 0, 0, nullptr, nullptr);
    const int y = n++;
    ycol.push_back(y);
    const int a = col[pt.ua][pt.oa], b = col[pt.ub][pt.ob];
    if (pt.loss >= 0) {
      int idx[3] = {y, a, b};
      double val[3] = {1, -1, -1};
      Cbc_addRow(m.get(), ("ya" + std::to_string(t)).c_str(), 3, idx, val, 'G', -1.0);
    } else {
      for (int x : {a, b}) {
        int idx[2] = {y, x};
        double val[2] = {1, -1};
        Cbc_addRow(m.get(), ("yb" + std::to_string(t)).c_str(), 2, idx, val, 'L', 0.0);
      }
    }
  }
  for (const auto& k : p.constraints) {
    // Rows scaled to a limit of ~1 so feasibility tolerances mean the same for bits and BOPs.
    double ks = std::fabs(k.limit) > 0 ? 1.0 / std::fabs(k.limit) : 1.0;
    std::vector<int> idx;
    std::vector<double> val;
    for (size_t u = 0; u < p.units.size(); ++u)
      for (size_t o = 0; o < col[u].size(); ++o) {
        idx.push_back(col[u][o]);
        val.push_back(k.coef[u][o] * ks);
      }
    if (k.name == "max_drop")
      for (size_t t = 0; t < p.pairs.size(); ++t) {
        idx.push_back(ycol[t]);
        val.push_back(p.pairs[t].loss * ks);
      }
    Cbc_addRow(m.get(), k.name.c_str(), static_cast<int>(idx.size()), idx.data(), val.data(), 'L', k.limit * ks);
  }
  Cbc_solve(m.get());
  if (Cbc_isProvenInfeasible(m.get())) return std::nullopt;
  const double* x = Cbc_bestSolution(m.get());
  if (!x) return std::nullopt;
  Choice c(p.units.size(), 0);
  for (size_t u = 0; u < p.units.size(); ++u) {
    double best = -1;
    for (size_t o = 0; o < col[u].size(); ++o)
      if (x[col[u][o]] > best) {
        best = x[col[u][o]];
        c[u] = static_cast<int>(o);
      }
  }
  // CBC's tolerances can admit a hair over a limit; the caller's check is exact.
  if (!feasible(p, c, 1e-7)) {
    log::verbose("ip: CBC's solution is over a budget by its tolerance; treating as infeasible");
    return std::nullopt;
  }
  if (!Cbc_isProvenOptimal(m.get())) log::warn("ip: CBC stopped at its time limit; the plan may not be optimal");
  return c;
}

void allocate_ip(AllocContext& ctx) {
  auto t0 = std::chrono::steady_clock::now();
  Problem p = context_problem(ctx, true);
  std::optional<Choice> c = solve_ip(p);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  finish_plan(p, c ? *c : fallback_choice(p), "ip", {{"solver", "cbc"}, {"solve_seconds", secs}},
              context_budget(ctx), ctx.plan);
}

}  // namespace mixq
