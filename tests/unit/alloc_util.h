// Synthetic allocation problems shared by the allocator tests: plans of random conv/Gemm layers
// (no model needed), noisy sensitivity tables, and the IP-vs-brute-force comparison.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "search/problem.h"
#include "search/sensitivity.h"
#include "search/solvers.h"

namespace mixq::test {

// A synthetic plan of n conv layers (no model needed): params, MACs, per-channel 8-bit schemes;
// layer 0 optionally pinned.
inline QuantPlan synthetic_plan(int n, std::mt19937_64& rng, bool pin_first) {
  QuantPlan p;
  std::uniform_int_distribution<int> ch(4, 64), k(1, 9);
  for (int i = 0; i < n; ++i) {
    LayerPlan L;
    L.name = "layer" + std::to_string(i);
    L.op = i % 3 == 2 ? "Gemm" : "Conv";
    L.weight = "w" + std::to_string(i);
    int64_t c = ch(rng), kk = k(rng) * 8;
    L.weight_shape = {c, kk};
    L.params = c * kk;
    L.bias_params = c;
    L.macs = L.params * (1 + static_cast<int64_t>(rng() % 50));
    L.weight_scheme.bits = 8;
    L.weight_scheme.granularity = Granularity::kPerChannel;
    L.input = "x" + std::to_string(i);
    L.input_scheme.bits = 8;
    L.pinned = pin_first && i == 0;
    p.layers.push_back(L);
  }
  p.other_bytes = 100;
  update_cost(p);
  return p;
}

// Random sensitivities, decreasing in bits on average but noisy (the monotone fix must cope).
inline SensitivityTable synthetic_table(const QuantPlan& p, std::mt19937_64& rng) {
  SensitivityTable t;
  std::uniform_real_distribution<double> U(0, 1);
  for (const auto& L : p.layers) {
    if (L.pinned) continue;
    LayerSens ls;
    ls.name = L.name;
    ls.params = L.params;
    double scale = U(rng) * 2;
    for (int b = 2; b <= 8; ++b) {
      SensEntry e;
      e.dl = b == 8 ? 0 : scale * std::pow(2.0, -1.2 * b) * (0.7 + 0.6 * U(rng));
      e.kl = e.noise = e.mse = e.dacc = e.dl;
      ls.bits[b] = e;
    }
    t.layers.push_back(ls);
  }
  return t;
}

// Solves p with CBC and by brute force: both agree on feasibility, and when feasible the IP's
// choice is feasible with the optimal objective (failures are recorded). Returns feasibility.
inline bool ip_matches_brute_force(const Problem& p, int trial) {
  auto ip = solve_ip(p);
  auto bf = solve_brute_force(p);
  EXPECT_EQ(ip.has_value(), bf.has_value()) << "trial " << trial;
  if (!bf || !ip) return false;
  EXPECT_TRUE(feasible(p, *ip)) << "trial " << trial;
  EXPECT_NEAR(objective(p, *ip), objective(p, *bf), 1e-6 * std::max(1.0, std::fabs(objective(p, *bf))))
      << "trial " << trial;
  return true;
}

}  // namespace mixq::test
