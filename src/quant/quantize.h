// Applying a QuantPlan: weights quantized once with their range estimator, activation quantizers
// calibrated on real data through executor hooks (two passes when a histogram is needed).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "data/dataset.h"
#include "quant/observer.h"
#include "quant/plan.h"
#include "quant/qmodel.h"

namespace mixq {

constexpr int64_t kCalibMaxBatch = 256;

struct QuantizeOptions {
  // Calibration samples per batch; 0: automatic (exec/evaluate.h auto_batch_size: up to
  // kCalibMaxBatch, fewer where a batch's largest activation would pass 32 MB). Ranges do not
  // depend on it.
  int64_t batch_size = 0;
  uint64_t seed = 0;       // stochastic rounding noise
  bool progress = true;
};

// `prepared` is the graph the plan was made for (BatchNorm folded). Activation statistics are
// collected with the weights already quantized, so each activation range sees the error of the
// layers before it.
QuantizedModel quantize_model(const Graph& prepared, const QuantPlan& plan, const Dataset& calib,
                              const QuantizeOptions& opts = {});

// (Re)computes qm.activations for `plan` on `calib` with qm's current weight codes (called by
// quantize_model, and again by methods that change the weights).
void calibrate_activations(QuantizedModel& qm, const QuantPlan& plan, const Dataset& calib,
                           const QuantizeOptions& opts = {});

// The activation observers calibrate_activations reads: one per distinct quantized layer input
// (keyed by tensor name), fed the min/max pass and, when `histogram` or a layer's range method
// needs it, the histogram pass, on the model with qm's dequantized weights.
std::map<std::string, ActivationObserver> observe_activations(const QuantizedModel& qm, const QuantPlan& plan,
                                                              const Dataset& calib, const QuantizeOptions& opts,
                                                              bool histogram);

// The prepared graph with every quantized weight replaced by its dequantized value (no
// activation quantization): what calibration and weight-only error checks run on.
Graph with_dequantized_weights(const QuantizedModel& qm);

}  // namespace mixq
