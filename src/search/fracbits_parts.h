// FracBits' parts (search/fracbits.h has the algorithm): what is learned (step 1), the
// differentiable cost and the initial bits (step 3), and the global offset + freeze (step 5).
// allocate_fracbits (fracbits.cpp) strings them together with the learning loop (steps 2, 4).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "quant/plan.h"
#include "search/budget.h"
#include "search/fracbits.h"

namespace mixq {

// A learned activation tensor: its readers and its quantizer at every integer bit-width.
struct FracActTable {
  std::string tensor;
  std::vector<int> readers;  // plan layer indices
  at::Tensor scale[kFracBitsMax + 1], zero[kFracBitsMax + 1];
  double qmin[kFracBitsMax + 1] = {}, qmax[kFracBitsMax + 1] = {};
};

// Step 1: unpinned layers on an affine grid (`layers`), and under a BOPs budget the activation
// tensors read only by such layers. Kernel-wise: `channels[k]` output channels of layers[k]
// (0: one lambda for the layer).
struct FracTargets {
  std::vector<int> layers;
  std::vector<int64_t> channels;
  std::vector<FracActTable> acts;       // quantizer tables filled by the caller
  std::vector<int> act_of_layer;        // plan layer -> index in acts, -1 if not learned
  bool per_channel() const { return !channels.empty() && channels[0] > 0; }
};
FracTargets fracbits_targets(const QuantPlan& plan, bool learn_acts, bool per_channel);

// The largest cost / budget ratio over the budgets given.
double fracbits_budget_ratio(const Budget& b, const PlanCost& c);

// Step 3: the interpolated cost relative to each target; fixed layers count at their plan bits.
// lambda_w[k] is 0-d (layer) or [C] (kernel-wise: each channel holds params / C weights and the
// same share of MACs, so the layer counts at the channels' mean lambda); lambda_a per act table.
class FracCost {
 public:
  FracCost(const QuantPlan& plan, const FracTargets& t, const Budget& b);
  at::Tensor term(const std::vector<at::Tensor>& lw, const std::vector<at::Tensor>& la) const;
  // The uniform real bits (every lambda equal) whose cost meets the budgets, by bisection.
  double uniform_bits() const;

 private:
  double ratio_uniform(double u) const;
  double abits_fixed(int i) const;  // a layer's input bits when not learned (32: unquantized)
  const QuantPlan& plan_;
  const FracTargets& t_;
  Budget b_;
  std::vector<double> params_, macs_;
  double total_params_ = 0, fixed_bits_ = 0, fixed_bops_ = 0, learned_bits0_ = 0, bytes0_ = 0;
};

// Step 5: the largest global offset d (bisection, `tries` evaluations) with round(lambda + d)
// within every budget on the plan's own cost model, then the rest of the budget spent one bit at
// a time on the bit-widths closest to rounding up. Writes the integer bits into `plan` (kernel-
// wise: LayerPlan::channel_bits). lambda_w[k]: one value (layer) or one per channel.
struct FracFreeze {
  OffsetSearch off;
  int filled = 0;
};
FracFreeze fracbits_freeze(QuantPlan& plan, const FracTargets& t, const Budget& b,
                           const std::vector<std::vector<double>>& lambda_w, const std::vector<double>& lambda_a,
                           int tries);

// The frozen integer bits of learned layer k, one per lambda (1 or C values).
std::vector<int> fracbits_frozen_bits(const QuantPlan& plan, const FracTargets& t, size_t k);

}  // namespace mixq
