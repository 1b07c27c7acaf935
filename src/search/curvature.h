// Second-order sensitivity ingredients per layer weight, from one pass over the calibration
// subset of the float model (autograd through the executor):
//   fisher: diagonal empirical Fisher E[g^2] of the calibration cross-entropy w.r.t. each weight,
//           estimated from micro-batch gradients (g of a batch of m samples, scaled by m);
//   trace:  Hutchinson's estimate (on the first 64 samples) of the Hessian trace of each layer's weight block (HAWQ-V2):
//           mean over Rademacher v of v^T H v, H v from a Hessian-vector product (double backward).
// The sensitivity table turns them into signals for a weight change dW:
//   fisher  0.5 * sum F (.) dW^2          hessian  0.5 * trace / n * ||dW||^2
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "graph/ir.h"

namespace mixq {

struct Curvature {
  std::map<std::string, at::Tensor> fisher;  // weight initializer name -> F, shaped like the weight
  std::map<std::string, double> trace;       // weight initializer name -> Hessian trace estimate
  bool has_trace = false;                    // false when the model's ops lack double backward
};

// `weights`: initializer names of the layers to cover. `batches` carry labels.
Curvature measure_curvature(const Graph& prepared, const std::vector<std::string>& weights,
                            const std::vector<Batch>& batches, int hutchinson_samples = 8,
                            int64_t micro_batch = 32);

}  // namespace mixq
