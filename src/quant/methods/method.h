// Quantization methods: how weights are rounded and ranges chosen, given a QuantPlan. One row per
// method in method.cpp; the range methods only pick estimators, the reconstruction methods then
// refine the quantized model the range estimators produced. Any allocator can precede any
// method (MixQuant + BRECQ is `--search mixquant --method brecq`). BN re-estimation and bias
// tuning are finishing steps any method can end with.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "graph/fold_bn.h"
#include "quant/plan.h"
#include "quant/qmodel.h"
#include "quant/quantizer.h"

namespace mixq {

// Paper defaults (METHODS.md). `iters` scales every loop: act_iters, adaquant_iters and
// bias_iters are multiplied by iters / 20000 when the user sets --iters.
struct ReconOptions {
  int64_t iters = 20000;           // AdaRound / BRECQ rounding iterations per unit
  int64_t batch = 32;
  double lr = 1e-3;                // Adam, rounding variables
  double lambda = 0.01;            // rounding regulariser weight
  double beta_start = 20, beta_end = 2, warmup = 0.2;
  std::string rec_loss = "mse";    // mse | fisher
  int64_t act_iters = 5000;        // LSQ activation step learning per unit
  double act_lr = 4e-4;            // Adam, cosine-annealed to 0
  double act_loss_p = 2.0;         // |error|^p of the activation phase (BRECQ's code passes p = 2.4 there)
  int64_t act_init_samples = 0;    // activation ranges before step learning from the first N calibration
                                   // samples (0: all; BRECQ's code: 64)
  bool act_init_sequential = false;  // activation ranges before step learning: each from the first
                                   // act_init_samples (64 if 0) samples as they reach it through the
                                   // weights and the activation quantizers before it, in one pass
                                   // (BRECQ's code); else from all samples with float activations
  bool act_float_inputs = false;   // activation phase: each unit reads the float model's inputs (BRECQ's
                                   // code: asym=False there) instead of the model quantized so far
  bool recon_pinned = false;       // BRECQ / AdaRound: reconstruct the pinned (8-bit) layers too, as BRECQ's code does
  bool learn_act = true;           // BRECQ / AdaRound: learn activation steps after the weights
  int64_t adaquant_iters = 1000, adaquant_batch = 50;
  bool adaquant_sequential = true; // inputs from the quantized model so far (else the float one)
  double adaquant_lr_w = 1e-5, adaquant_lr_b = 1e-3, adaquant_lr_in = 1e-1, adaquant_lr_wrange = 1e-3;
  bool bn_reestimate = false;
  bool bias_tune = false;
  int64_t bias_iters = 1000, bias_batch = 50;
  double bias_lr = 1e-3;
  // LAPQ (lapq.cpp): calibration subset, p grid, joint search budget.
  int64_t lapq_samples = 512;      // first samples of the calibration set (the paper's 512)
  int lapq_p_points = 10;          // p in linspace(2, 4, lapq_p_points)
  int lapq_sweeps = 2;             // joint search sweeps of 4 (n + 1) evaluations (n clipping ranges)
  int64_t lapq_evals = 0;          // total joint evaluations instead (0: lapq_sweeps sweeps)
  std::string lapq_optimizer = "praxis";  // praxis | bobyqa (NLopt)
  bool lapq_bias_corr = false;     // per-channel bias correction after the joint search
  // Multipoint (multipoint.cpp): extra points as a fraction of the eligible output channels, the
  // relative output error below which a channel gets none, calibration samples, rounds, points per channel.
  double mp_extra = 0.1;
  double mp_threshold = 0;
  int64_t mp_samples = 256;
  int mp_rounds = 8;
  int mp_max_points = 4;
  bool mp_grouped = false;         // give grouped (depthwise) convolutions points too
  int64_t cache_mb = 2048;         // cached unit data kept in memory; the rest spills to a file
  std::string cache_dir;           // spill directory ("" = $TMPDIR or /tmp)
  uint64_t seed = 0;
  // AdaRound / BRECQ / AdaQuant progress file (quant/methods/recon_checkpoint.h), rewritten after
  // every unit ("" = none); resume: continue from it when it exists (else start over).
  std::string checkpoint;
  bool resume = true;
  int64_t calib_batch = 256;       // batch for caching passes
  // auto | fp32 | bf16: Conv math inside the AdaRound / BRECQ optimisation loops
  // (exec/conv_precision.h); auto = bf16 where the CPU has native bf16, else fp32.
  std::string precision = "auto";
  bool progress = true;
  // Sets iters and scales the other loops proportionally.
  void scale_iters(int64_t n);
};

struct MethodContext {
  const Graph& prepared;             // BN-folded float graph
  const QuantPlan& plan;
  const Dataset& calib;
  const std::vector<FoldedBn>& folded;
  const ReconOptions& opts;
  QuantizedModel& qm;                // in: range-estimated quantization; out: refined
  nlohmann::json report = nlohmann::json::object();  // per-unit losses, times, what was skipped
  bool interrupted = false;          // a method without checkpoints stopped early (the job then
                                     // throws Interrupted instead of writing outputs)
  // When set, AdaRound / BRECQ copy the model here after the rounding phase with every activation
  // float (--eval-weights-only: tells the rounding's share of the loss from the activations').
  QuantizedModel* after_rounding = nullptr;
};

struct MethodRow {
  const char* name;
  const char* help;
  RangeMethod weight_range;   // initial estimators written into the plan
  RangeMethod input_range;
  void (*refine)(MethodContext& ctx);  // nullptr: ranges only
  bool checkpoints = false;   // saves progress per unit in ReconOptions::checkpoint (resumable)
};

// A method's progress line (printf format) through log::info, when opts.progress is on.
void method_say(const ReconOptions& o, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

const std::vector<MethodRow>& method_table();
const MethodRow& find_method(const std::string& name);  // throws kInvalidArgument listing them
std::vector<std::string> method_names();

// The methods (one file each).
void refine_adaround(MethodContext& ctx);   // brecq.cpp: layer units
void refine_brecq(MethodContext& ctx);      // brecq.cpp: block units
void refine_adaquant(MethodContext& ctx);   // adaquant.cpp
void refine_lapq(MethodContext& ctx);       // lapq.cpp: Lp init at p*, then the joint search
void refine_lapq_init(MethodContext& ctx);  // lapq.cpp: the Lp init at p* alone
void refine_multipoint(MethodContext& ctx); // multipoint.cpp: extra low-bit points per channel
void bn_reestimate(MethodContext& ctx);     // bn_reestimate.cpp
void bias_tune(MethodContext& ctx);         // bias_tune.cpp

}  // namespace mixq
