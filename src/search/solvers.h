// Solvers over search/problem.h's Problem (no model, no data: testable on random tables).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "search/problem.h"

namespace mixq {

// Integer program (CBC): binary x[u][o], sum_o x[u][o] = 1, every constraint as a row, minimise
// the objective. nullopt when CBC proves the problem infeasible (or finds nothing in the limit).
std::optional<Choice> solve_ip(const Problem& p, double max_seconds = 30);

// Exhaustive search (tests only; throws when the space exceeds `max_points`).
std::optional<Choice> solve_brute_force(const Problem& p, int64_t max_points = 2000000);

// The greedy Pareto curve: from every unit at its highest option, repeatedly move the one unit
// to the lower option that adds the least predicted loss per unit of cost saved (cost: the sum of
// the budgets, each relative to its limit, else stored bits), down to every unit at its lowest
// option. Point 0 is the highest choice; each later point is cheaper.
std::vector<Choice> pareto_curve(const Problem& p);

struct GeneticOptions {
  int population = 64, generations = 150;
  double mutation = 0;   // per-unit probability; 0: 1 / units
  uint64_t seed = 0;
};
// Genetic search (BRECQ's mixed precision): tournament selection, uniform crossover, +-1 option
// mutations, infeasible children repaired along the greedy direction, elitism. Returns the best
// feasible choice seen (nullopt when even the fallback is infeasible).
std::optional<Choice> solve_genetic(const Problem& p, const GeneticOptions& o);

}  // namespace mixq
