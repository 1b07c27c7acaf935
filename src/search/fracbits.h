// FracBits (seed 002; METHODS.md "FracBits"), PTQ mode: learned fractional bit-widths.
//
//  1. Every unpinned layer gets a real weight bit-width lambda_w, and (under a BOPs budget) every
//     activation tensor read only by unpinned layers a real lambda_a, clamped to [2, 8]. Pinned
//     layers (first/last) and row-wise embedding tables keep the plan's bits. Under size budgets
//     alone activations stay at the plan's bits (--abits): they cost nothing there, and the loss
//     would only push them to 8.
//  2. Forward: Q_lambda(x) = (lambda - floor(lambda)) Q_ceil(x) + (1 + floor(lambda) - lambda)
//     Q_floor(x), for weights and activations; Q_b with the plan's scheme and range method at b
//     bits (weights: their own range at b bits; activations: the histogram range at b bits from
//     one calibration pass), rounding straight-through, so lambda learns only through the two
//     interpolation weights.
//  3. Loss = calibration loss (cross-entropy with labels, else the fidelity loss to the float
//     outputs; quant/methods/calib_loss.h) + kappa * sum over budgets |cost / target - 1|. The
//     interpolated costs are exact: size is linear in lambda_w, and the bilinear interpolation of
//     b_w b_a MACs over the four integer corners equals lambda_w lambda_a MACs. Costs are taken
//     relative to the target so kappa = 1 (the paper's) weighs every budget alike.
//  4. Adam on the lambdas only (PTQ: weights stay at their float values; the finishing --method
//     quantizes them afterwards), `iters` steps over calibration batches, initial bits = the
//     uniform bits meeting the budget + 0.5 (the paper's target + ~0.5).
//  5. A global offset d, found by bisection, so that round(lambda + d) clamped to [2, 8] meets
//     every budget as the plan's cost model counts it (PlanCost: the same numbers the IP
//     allocator is held to): the largest d with cost <= budget. With few layers one offset can
//     leave several percent of the budget unused; the rest is then spent one bit at a time on
//     the bit-widths closest to rounding up (ours, not the paper's; `filled` in the report).
//     Integer bits are then frozen.
// Training mode (--train-data SPEC --epochs N): the same, but on a labelled training set with the
// learned layers' weights trained too (Adam, --fracbits-weight-lr; Q_b of the moving weight on
// the grid its float value had, straight-through), the bits frozen by step 5 after 80% of the
// steps (the lambdas then sit at their integers, where Q_lambda is the plain quantizer) and the
// last 20% training the weights alone; the weights are written into the job's graph, and
// --method quantizes them at the frozen bits.
// Kernel-wise (--fracbits-granularity channel): lambda_w is a vector, one real bit-width per
// output channel of each learned layer (activations stay per tensor); each channel interpolates
// between its own floor and ceil quantizers (fracbits_interpolate_channels), the cost counts each
// channel at its lambda (params / C weights and MACs each), and the offset, the fill (one channel
// bit at a time) and the freeze work per channel, writing LayerPlan::channel_bits. The finishing
// method then quantizes each channel on its own grid (quant/channel_bits.h).
// Files: fracbits.cpp (the interpolation, bisection, the learning loop), fracbits_cost.cpp (what
// is learned, the cost term), fracbits_freeze.cpp (offset, fill, freeze); fracbits_parts.h.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>

namespace mixq {

constexpr int kFracBitsMin = 2, kFracBitsMax = 8;

// Q_lambda from the quantizers at integer bits: q_at(b) = Q_b(x). `lambda` is a 0-d tensor in
// [2, 8] (gradients flow to it through the interpolation weights); at an integer lambda the
// result is Q_lambda(x) exactly (0 * Q_ceil + 1 * Q_floor).
at::Tensor fracbits_interpolate(const at::Tensor& lambda, const std::function<at::Tensor(int)>& q_at);

// Kernel-wise Q_lambda: `lambda` is [C] (one per channel of `axis` of the quantized tensor),
// q_at(b) the whole tensor quantized at b bits (each channel on its own b-bit grid). Channel c of
// the result is channel c of fracbits_interpolate(lambda[c], q_at): the mix of its own floor and
// ceil quantizers, with gradients to lambda[c] only; at integer lambdas it equals, channel by
// channel, the plain quantizer at that channel's bits exactly.
at::Tensor fracbits_interpolate_channels(const at::Tensor& lambda, int64_t axis,
                                         const std::function<at::Tensor(int)>& q_at);

// round(lambda + offset) clamped to [2, 8].
int fracbits_round(double lambda, double offset);

struct OffsetSearch {
  double offset = 0;   // the largest offset found with ratio <= 1
  double ratio = 0;    // cost / budget there (the largest over the budgets)
  int tries = 0;       // ratio evaluations
  bool feasible = true;  // false: even `lo` is over budget (ratio is then at lo)
};
// Bisection for the largest offset d in [lo, hi] with ratio_at(d) <= 1, where ratio_at is the
// cost of the plan rounded at d over the budget (non-decreasing in d).
OffsetSearch fracbits_offset(const std::function<double(double)>& ratio_at, double lo, double hi, int tries);

}  // namespace mixq
