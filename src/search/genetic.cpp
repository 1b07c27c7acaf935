// Genetic allocator (BRECQ's mixed precision, Li et al. 2021, sec. 3.4: a genetic algorithm over
// per-layer bit-widths, fitness from the measured sensitivities, under a size or latency
// constraint). Individuals are option vectors; fitness is the problem's objective for feasible
// ones. Tournament selection (size 3), uniform crossover, +-1 option mutation (probability
// 1/units), children over a budget repaired by lowering, one step at a time, the unit with the
// least objective increase per cost saved; the best 4 survive unchanged (elitism). Population 64,
// 150 generations; the seed makes it reproducible. The population starts from the greedy Pareto
// point for the budget plus random individuals.
#include <algorithm>
#include <random>

#include "search/allocator.h"
#include "search/context.h"
#include "search/solvers.h"

namespace mixq {

namespace {

void repair(const Problem& p, Choice& c) {
  // Size-like budgets: lower bits until feasible. max_drop (objective = size): raise bits instead.
  const bool lower = p.objective != "size_bits";
  while (!feasible(p, c)) {
    int best = -1;
    double best_score = 0;
    const double v0 = violation(p, c);
    for (size_t u = 0; u < c.size(); ++u) {
      int o = c[u] + (lower ? -1 : 1);
      if (o < 0 || o >= static_cast<int>(p.units[u].bits.size())) continue;
      Choice t = c;
      t[u] = o;
      double dv = v0 - violation(p, t);
      if (dv <= 0) continue;
      double dobj = p.units[u].obj[o] - p.units[u].obj[c[u]];
      double score = dobj / dv;
      if (best < 0 || score < best_score) {
        best = static_cast<int>(u);
        best_score = score;
      }
    }
    if (best < 0) return;  // cannot improve: infeasible problem
    c[best] += lower ? -1 : 1;
  }
}

}  // namespace

std::optional<Choice> solve_genetic(const Problem& p, const GeneticOptions& o) {
  std::mt19937_64 rng(o.seed);
  const size_t n = p.units.size();
  const double pm = o.mutation > 0 ? o.mutation : 1.0 / std::max<size_t>(1, n);
  auto fitness = [&](const Choice& c) { return feasible(p, c) ? objective(p, c) : 1e300; };
  std::vector<Choice> pop;
  {
    // Seeds: the Pareto curve's best feasible point, and random individuals.
    std::optional<Choice> seed;
    for (const auto& c : pareto_curve(p))
      if (feasible(p, c) && (!seed || objective(p, c) < objective(p, *seed))) seed = c;
    if (seed) pop.push_back(*seed);
  }
  while (static_cast<int>(pop.size()) < o.population) {
    Choice c(n);
    for (size_t u = 0; u < n; ++u) c[u] = std::uniform_int_distribution<int>(0, int(p.units[u].bits.size()) - 1)(rng);
    repair(p, c);
    pop.push_back(c);
  }
  std::uniform_real_distribution<double> U(0, 1);
  auto tournament = [&]() -> const Choice& {
    size_t best = rng() % pop.size();
    for (int t = 0; t < 2; ++t) {
      size_t i = rng() % pop.size();
      if (fitness(pop[i]) < fitness(pop[best])) best = i;
    }
    return pop[best];
  };
  for (int gen = 0; gen < o.generations; ++gen) {
    std::sort(pop.begin(), pop.end(), [&](const Choice& a, const Choice& b) { return fitness(a) < fitness(b); });
    std::vector<Choice> next(pop.begin(), pop.begin() + std::min<size_t>(4, pop.size()));
    while (next.size() < pop.size()) {
      const Choice& a = tournament();
      const Choice& b = tournament();
      Choice c(n);
      for (size_t u = 0; u < n; ++u) {
        c[u] = U(rng) < 0.5 ? a[u] : b[u];
        if (U(rng) < pm) {
          int d = U(rng) < 0.5 ? -1 : 1;
          c[u] = std::clamp(c[u] + d, 0, int(p.units[u].bits.size()) - 1);
        }
      }
      repair(p, c);
      next.push_back(std::move(c));
    }
    pop = std::move(next);
  }
  std::sort(pop.begin(), pop.end(), [&](const Choice& a, const Choice& b) { return fitness(a) < fitness(b); });
  if (!feasible(p, pop[0])) return std::nullopt;
  return pop[0];
}

void allocate_genetic(AllocContext& ctx) {
  Problem p = context_problem(ctx, true);
  GeneticOptions go;
  go.seed = ctx.opts.seed;
  std::optional<Choice> c = solve_genetic(p, go);
  finish_plan(p, c ? *c : fallback_choice(p), "genetic",
              {{"population", go.population}, {"generations", go.generations}, {"seed", go.seed}},
              context_budget(ctx), ctx.plan);
}

}  // namespace mixq
