// Bit-width allocators: each takes a plan covering every layer (from make_plan) and sets the
// weight bits. One file per allocator, one row per allocator in allocator.cpp. Any allocator can
// precede any quantization method.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "graph/ir.h"
#include "quant/plan.h"
#include "search/budget.h"
#include "search/problem.h"

namespace mixq {

struct HwSpec;
struct SensitivityTable;

struct SearchOptions {
  int wbits = 4;                // uniform: the bits of every unpinned layer
  double qem = 0;               // mixquant: quantization error multiplier (0: not given)
  int qem_ref_bits = 8;         // mixquant: the reference bit-width of the error threshold
  std::string qem_ref = "layer";  // mixquant: threshold from each layer's own e_ref ("layer", the
                                  // paper's reading) or from the model's mean e_ref ("model")
  double budget_avg_wbits = 0;  // target average weight bits (0: none); copied into `budget`
  Budget budget;                // size / BOPs / latency / max-drop limits (search/budget.h)
  // Sensitivity signal the table-driven allocators minimise. KL by default: on 256 calibration
  // samples the label loss increase (dl) of a single layer is within its own noise on the ViT
  // fixture, KL against the float logits is not (BENCHMARKS.md, budgeted allocation).
  std::string signal = "auto";  // search/sensitivity.h: kl with labels, else noise
  uint64_t seed = 0;            // genetic search
  bool measure = true;          // pareto: re-measure candidate points on calibration data
  std::string latency_table;    // per-layer latency file (search/latency.h) for latency budgets
  // Additivity check and repair (search/additivity.h) after ip/genetic: re-measure in-block
  // pairs and re-solve when measured and predicted differ by more than this fraction; < 0: off.
  double additivity_tol = 0.2;
  int repair_rounds = 2;        // 0: check and report only
  int repair_pairs = 8;         // pairs measured per round
  std::string floorceil_base = "uniform";  // floorceil: the allocator that sets the weight bits
  // fracbits (search/fracbits.h): Adam steps on the bit-widths, its learning rate, the cost
  // term's weight, calibration samples and batch, initial bits above the budget's uniform bits,
  // bisection tries for the global offset.
  int64_t fracbits_iters = 400;
  double fracbits_lr = 0.01;
  double fracbits_kappa = 1.0;
  int64_t fracbits_samples = 1024, fracbits_batch = 64;
  double fracbits_init_offset = 0.5;
  int fracbits_bisect_tries = 40;
  std::string fracbits_granularity = "layer";  // layer | channel (kernel-wise weight bits)
  // fracbits training mode: weights and bit-widths learned together on this labelled dataset
  // ("" = PTQ mode) for `fracbits_epochs`, integer bits frozen after 80% of the steps.
  std::string fracbits_train_data;
  int64_t fracbits_epochs = 1;
  double fracbits_weight_lr = 5e-5;
};

// What an allocator may use besides the plan. `table` and `measure` are null when the job has no
// calibration data (data-free allocators need neither).
struct AllocContext {
  const Graph& prepared;                   // BN-folded float graph the plan belongs to
  QuantPlan& plan;                         // in: defaults, pinned layers; out: chosen bits
  const SearchOptions& opts;
  const HwSpec* hw = nullptr;              // allowed bits / shared groups (search/hw_spec.h)
  // The sensitivity table for `plan`'s defaults (computed or loaded from cache on first call).
  std::function<const SensitivityTable&()> table;
  // Measures a candidate plan on the calibration subset: {top-1 %, mean cross-entropy}.
  std::function<std::pair<double, double>(const QuantPlan&)> measure;
  const Dataset* calib = nullptr;          // the calibration data (allocators that learn on it)
  // Training allocators (fracbits --train-data) write their fine-tuned weights into this graph
  // (the job's prepared graph, which `prepared` also refers to); null: weights cannot change.
  Graph* tune = nullptr;
  // Opens a dataset spec with the model's preprocessing (null: no data beyond `calib`).
  std::function<std::unique_ptr<Dataset>(const std::string& spec)> open_data;
};

struct AllocatorRow {
  const char* name;
  const char* help;
  bool needs_table;  // reads the sensitivity table (so needs calibration data)
  // Sets bits in ctx.plan and records search_params/budget.
  void (*run)(AllocContext& ctx);
  // Re-solves the allocator's problem (with pair terms added by the additivity repair); null for
  // allocators that measure instead of trusting the table (pareto, hago) or use none.
  std::optional<Choice> (*resolve)(const Problem& p, const SearchOptions& o) = nullptr;
};

const std::vector<AllocatorRow>& allocator_table();
const AllocatorRow& find_allocator(const std::string& name);  // throws kInvalidArgument

void allocate_uniform(AllocContext& ctx);
void allocate_mixquant(AllocContext& ctx);
void allocate_ip(AllocContext& ctx);
void allocate_pareto(AllocContext& ctx);
void allocate_genetic(AllocContext& ctx);
void allocate_hago(AllocContext& ctx);
void allocate_floorceil(AllocContext& ctx);  // base allocator, inputs at weight bits
void allocate_fracbits(AllocContext& ctx);   // search/fracbits.h

// MixQuant's per-layer choice for one QEM (exposed for tests and the QEM sweep): for every
// unpinned layer the smallest b in 2..8 with e_b <= qem * e_ref, e_b = MSE(W, DQ(Q_b(W))).
std::vector<int> mixquant_bits(const Graph& g, const QuantPlan& plan, double qem, int ref_bits,
                               const std::string& ref = "layer");

}  // namespace mixq
