// The calibration loss of a whole quantized model, as the loss-driven methods (LAPQ's joint
// search, floor/ceil rounding, FracBits) measure it: with labels the mean cross-entropy, without
// them the fidelity loss to the float outputs (KL(float || quantized) of class scores, else the
// relative output noise ||z - zf||^2 / ||zf||^2 of every output flattened per sample), as the
// sensitivity probe measures it (search/probe.h).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "data/dataset.h"
#include "exec/executor.h"

namespace mixq {

// The loss of outputs z ([N, classes] or flattened, exec/evaluate.h comparable_outputs) against
// the float outputs zf; `labels` undefined: the fidelity loss. Computed in double.
double calibration_loss(const at::Tensor& zf, const at::Tensor& z, bool classes, const at::Tensor& labels);

// A fixed calibration subset with its inputs, labels and float outputs cached once, so that every
// evaluation of a candidate model costs one forward pass of the quantized model.
class CalibSubset {
 public:
  // Runs `fp` (the float model) over `data` in batches of `batch`. `model` names the model in
  // errors (the graph's source path).
  CalibSubset(Executor& fp, const Dataset& data, int64_t batch, const std::string& model);

  size_t batches() const { return inputs_.size(); }
  const std::vector<at::Tensor>& inputs(size_t b) const { return inputs_[b]; }
  int64_t samples() const { return samples_; }
  bool has_labels() const { return labels_.defined(); }
  bool classes() const { return classes_; }
  // "cross-entropy" or "fidelity to the float outputs".
  const char* loss_name() const;

  // Batch b's share of the whole subset's loss for the model outputs `outs` of that batch, as a
  // differentiable 0-d double tensor: the shares of all batches sum to the subset's loss.
  at::Tensor batch_share(size_t b, const std::vector<at::Tensor>& outs) const;
  // The subset's loss of the model `q` (no gradients).
  double loss(Executor& q) const;
  // The float model's own loss: its cross-entropy with labels; 0 without (the fidelity loss of the
  // float model to itself).
  double float_loss() const { return float_loss_; }

 private:
  std::string model_;
  std::vector<std::vector<at::Tensor>> inputs_;
  std::vector<at::Tensor> zf_;   // float outputs per batch
  std::vector<int64_t> begin_;   // first sample of each batch
  at::Tensor labels_;            // all samples (undefined without labels or class scores)
  double zf_norm2_ = 0;          // sum ||zf||^2 (the noise loss's denominator)
  int64_t samples_ = 0;
  bool classes_ = true;
  double float_loss_ = 0;
};

}  // namespace mixq
