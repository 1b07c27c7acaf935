// Bit-width allocators: each takes a plan covering every layer (from make_plan) and sets the
// weight (and possibly activation) bits. One file per allocator, one row per allocator in
// allocator.cpp. Any allocator can precede any quantization method.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "graph/ir.h"
#include "quant/plan.h"

namespace mixq {

struct SearchOptions {
  int wbits = 4;                // uniform: the bits of every unpinned layer
  double qem = 0;               // mixquant: quantization error multiplier (0: not given)
  int qem_ref_bits = 8;         // mixquant: the reference bit-width of the error threshold
  std::string qem_ref = "layer";  // mixquant: threshold from each layer's own e_ref ("layer", the
                                  // paper's reading) or from the model's mean e_ref ("model")
  double budget_avg_wbits = 0;  // target average weight bits (0: none)
};

struct AllocatorRow {
  const char* name;
  const char* help;
  // Sets bits in `plan` (whose layers come from `g`) and records search_params/budget.
  void (*run)(const Graph& g, QuantPlan& plan, const SearchOptions& opts);
};

const std::vector<AllocatorRow>& allocator_table();
const AllocatorRow& find_allocator(const std::string& name);  // throws kInvalidArgument

void allocate_uniform(const Graph& g, QuantPlan& plan, const SearchOptions& opts);
void allocate_mixquant(const Graph& g, QuantPlan& plan, const SearchOptions& opts);

// MixQuant's per-layer choice for one QEM (exposed for tests and the QEM sweep): for every
// unpinned layer the smallest b in 2..8 with e_b <= qem * e_ref, e_b = MSE(W, DQ(Q_b(W))).
std::vector<int> mixquant_bits(const Graph& g, const QuantPlan& plan, double qem, int ref_bits,
                               const std::string& ref = "layer");

}  // namespace mixq
