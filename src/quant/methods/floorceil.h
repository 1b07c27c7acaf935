// Floor/ceil rounding for a lower calibration loss (seed 004; METHODS.md "Floor/ceil rounding").
// The paper gives only its abstract; the algorithm here is our reading of it, checked by
// experiment (BENCHMARKS.md, floor/ceil rounding):
//
//  1. Start from the quantized model the plan and --method produced (nearest rounding for the
//     range methods, learned codes for AdaRound/BRECQ), every activation quantizer on, and measure
//     the calibration loss L0 on the first `samples` calibration samples (cross-entropy with
//     labels, else the fidelity loss to the float outputs: quant/methods/calib_loss.h).
//  2. One backward pass of that loss through the fake-quantized model (straight-through
//     activation rounding) gives g = dL/dW~ for every quantized weight.
//  3. Candidates: per layer (or per output channel) replace the codes by floor(W / s) + z or by
//     ceil(W / s) + z (clamped to the grid); predicted change <g, DQ(new) - DQ(current)>. Only
//     candidates predicted to lower the loss are kept, most negative first.
//  4. Each candidate is applied and the loss measured; it is kept only when the measured loss is
//     strictly lower than the current one, else undone. Channel granularity: one layer's
//     channels move together (each to its better option), then the better-predicted half, a
//     quarter, ... (`halvings`), so a layer costs a handful of evaluations, not one per channel.
//  5. `rounds` > 1 repeats 2-4 from the new codes (a fresh gradient each round).
// The loss therefore never rises. Only integer codes change (scales, zero points and activation
// ranges stay), so QDQ export and packing carry the choice exactly. Row-wise embedding schemes
// are skipped (their codes are not on an affine grid).
#pragma once

#include <nlohmann/json.hpp>

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>

#include "quant/methods/method.h"

namespace mixq {

struct FloorCeilOptions {
  std::string granularity = "layer";  // layer | channel (output channels, the weight's channel axis)
  int64_t samples = 1024;             // first calibration samples the loss runs on
  int64_t max_evals = 256;            // measured candidates in all
  int rounds = 1;                     // gradient + acceptance passes
  int halvings = 3;                   // channel granularity: tries per layer after the first
  int64_t batch = 256;
};

// The codes of weight `w` (float, the layer's initializer) under qw's parameters and grid with
// rounding `r` (kFloor or kCeil): clamp(floor(w / s) + z, qmin, qmax) or the same with ceil.
at::Tensor rounded_codes(const QuantizedWeight& qw, const at::Tensor& w, Rounding r);

struct FloorCeilResult {
  nlohmann::json report;                       // losses, counts, every evaluated move (trace)
  std::map<std::string, Rounding> layer_rounding;  // layers whose codes are now all floor or ceil
};

// Changes ctx.qm's weight codes (see above); ctx.plan is read only.
FloorCeilResult floorceil_rounding(MethodContext& ctx, const FloorCeilOptions& o);

}  // namespace mixq
