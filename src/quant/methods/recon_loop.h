// Pieces every reconstruction loop shares: a unit's cached data (inputs from the quantized model
// so far, float targets, optional Fisher weights), the unit's loss on a batch of cached rows, and
// the time split of an optimisation loop (what `--report` shows per unit).
#pragma once

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "exec/conv_precision.h"
#include "graph/blocks.h"
#include "quant/methods/method.h"
#include "quant/methods/recon_model.h"

namespace mixq {

class Progress;

CacheBudget cache_budget(const ReconOptions& o);
// The Conv precision of AdaRound / BRECQ optimisation loops (--recon-precision): auto picks bf16
// where the CPU has native bf16 dot products, else fp32; an explicit bf16 without them is a
// kInvalidArgument error (oneDNN would emulate it, slower than float32). Caching, evaluation and
// the written model always compute in float32.
ConvPrecision loop_precision(const ReconOptions& o);
std::set<std::string> pinned_layers(const QuantPlan& plan);
// The prepared graph's layers that the quantized model quantizes, in graph order.
std::vector<LayerInfo> quantized_layers(const MethodContext& ctx);
// "<name> <loss>" as the progress bar's postfix.
void show_loss(Progress& bar, const char* name, const at::Tensor& loss);

struct UnitCache {
  std::vector<TensorStore> in, out, fisher;
  double fisher_scale = 1;  // 1 / mean(g^2): Fisher weights keep the MSE loss's scale
  int64_t rows() const { return in.empty() ? 0 : in[0].rows(); }
};

// Inputs from rm.quant() as it is configured now (from rm.fp() with `float_inputs`), float outputs
// from rm.fp(); with `fisher`, the squared gradients of the task loss (cross-entropy on the
// dataset's labels, or on the float model's top-1 when it has none) with respect to each unit
// output of the float model.
UnitCache cache_unit(ReconModel& rm, const Unit& u, const MethodContext& ctx, CacheBudget& budget, bool fisher,
                     bool float_inputs = false);

// Feeds rows `idx` of the cache to the unit in rm.quant() and returns its outputs by name.
std::map<std::string, at::Tensor> unit_outputs(ReconModel& rm, const Unit& u, const UnitCache& c, const at::Tensor& idx);

// Feeds rows `idx` of the cache to the unit in rm.quant() and returns the reconstruction loss
// summed over the unit's outputs (quant/methods/soft_quant.h reconstruction_loss, |error|^p).
at::Tensor unit_loss(ReconModel& rm, const Unit& u, const UnitCache& c, const at::Tensor& idx, double p = 2.0);

// The same loss over the first `max_rows` cached rows, without gradients (for reports).
double unit_loss_eval(ReconModel& rm, const Unit& u, const UnitCache& c, int64_t max_rows = 1024);

struct LoopTimer {
  using clock = std::chrono::steady_clock;
  double forward = 0, backward = 0, step = 0, other = 0;
  clock::time_point t = clock::now();
  double lap() {
    auto n = clock::now();
    double s = std::chrono::duration<double>(n - t).count();
    t = n;
    return s;
  }
  nlohmann::json to_json(int64_t iters) const;  // seconds and ms per 1,000 iterations by phase
  // The back half of one optimisation step, each part timed: the loss's forward pass (time since
  // the last lap), zero_grad + backward, then the optimiser step.
  template <typename Optimizer>
  void backward_and_step(Optimizer& opt, const at::Tensor& loss) {
    forward += lap();
    opt.zero_grad();
    loss.backward();
    backward += lap();
    opt.step();
    step += lap();
  }
};

// MIXQ_OP_PROFILE=<dir>: libtorch's operator profiler records one optimisation loop into
// <dir>/<phase>-<unit>.trace.json (chrome://tracing format; bench/op_profile.py sums it per op).
// Returns null (no profiling, no cost) when the variable is unset.
std::shared_ptr<void> op_profile(const std::string& phase, const std::string& unit);

// Adds iters, timing and wall seconds since `start` to a unit's report entry.
void finish_unit_report(nlohmann::json& ju, int64_t iters, const LoopTimer& timer, LoopTimer::clock::time_point start);


}  // namespace mixq
