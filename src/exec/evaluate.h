// Classification accuracy of a model (any executor: float, or later fake-quantized) on a dataset.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "data/dataset.h"
#include "exec/executor.h"

namespace mixq {

struct EvalOptions {
  int64_t batch_size = 250;
  bool keep_logits = false;  // return every sample's output row
  bool progress = true;      // progress bar on stderr
  std::string label = "eval";
};

struct EvalResult {
  int64_t samples = 0;
  int64_t correct = 0;
  double top1 = 0;       // percent
  double loss = 0;       // mean cross-entropy of the first output vs labels
  double seconds = 0;    // wall time of the whole loop
  at::Tensor logits;     // [samples, classes] when keep_logits
};

// Runs the model over the whole dataset; the first graph output must be [batch, classes] scores.
// Throws kInvalidData when the dataset has no labels or the output is not [batch, classes].
EvalResult evaluate(Executor& ex, const Dataset& data, const EvalOptions& opts = {});

}  // namespace mixq
