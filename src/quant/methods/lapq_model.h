// The quantized model as LAPQ's searches see it: every clipping range of the plan (weights per
// tensor or per channel as the plan says, activations per tensor), the Lp-optimal starting ranges
// for any p, and the calibration loss of the whole quantized model under a vector of per-tensor
// multipliers of those ranges.
//
// The loss runs on a fixed calibration subset whose inputs, labels and float outputs are cached
// once; an evaluation re-quantizes only the weights whose multiplier changed and runs the
// fake-quantized model (quant/methods/recon_model.h: what is evaluated is what is exported).
// With labels: cross-entropy; without: the fidelity loss to the float outputs (KL of class scores,
// else the relative output noise), as the sensitivity probe measures it (search/probe.h).
#pragma once

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "data/dataset.h"
#include "quant/methods/method.h"
#include "quant/methods/recon_model.h"
#include "quant/observer.h"

namespace mixq {

class LapqModel {
 public:
  // Collects the activation histograms of `ctx.qm` (its current weights) on `subset` and caches
  // the subset's inputs, labels and float outputs. `subset` must outlive the object.
  LapqModel(MethodContext& ctx, const Dataset& subset);

  // Every clipping range set to its Lp-optimal value for this p (BRECQ's grid of 80 shrinks of
  // [min, max], weights on their values, activations on their histograms); multipliers reset to 1.
  void set_lp_init(double p);
  double p() const { return p_; }

  // The joint parameters: one log multiplier per clipping range of an unpinned layer (weights) or
  // read by one (activations); a per-channel weight has one multiplier for all its channels.
  // Pinned layers keep their Lp ranges.
  size_t dims() const { return joint_.size(); }
  std::vector<std::string> dim_names() const;
  // The model's quantizers at range_i = init_i * exp(x_i) (x empty: all 1), and the loss there.
  void set_point(const std::vector<double>& x);
  double loss(const std::vector<double>& x);
  int64_t evaluations() const { return evals_; }
  bool has_labels() const { return labels_.defined(); }

  // Per-channel bias correction at the clipping of the last set_point / loss: the mean output
  // error the weight quantization causes, E[(W - W~) x] = (W - W~) E[x] with E[x] per input
  // channel of the layer's (quantized) input over the subset, added to the bias (Conv and Gemm
  // with an initializer bias, unpinned; all layers from one pass). Returns the layers changed.
  int bias_correct();
  void undo_bias_correction();

  // Writes the current clipping (and any bias correction) into ctx.qm: weight parameters and
  // codes, activation scale and zero point, biases.
  void write_back();

 private:
  struct Clip {
    bool weight = true;
    std::string name;          // layer (weight) or tensor (activation)
    QScheme scheme;
    size_t index = 0;          // qm.weights index (weights)
    at::Tensor w, noise;       // float weight; stochastic-rounding noise drawn once (weights)
    at::Tensor min, max;       // init range, QParams-shaped (activations: 0-d)
    ActQuant* act = nullptr;   // activations
    double applied = 0;        // log multiplier the model holds now (NaN: never applied)
  };
  void apply(Clip& c, double logm);
  QParams params_of(const Clip& c, double logm) const;

  MethodContext& ctx_;
  std::unique_ptr<ReconModel> rm_;
  std::vector<Clip> clips_;
  std::vector<size_t> joint_;  // clips_ indices in the joint vector
  std::map<std::string, ActivationObserver> observers_;
  std::vector<std::vector<at::Tensor>> inputs_;  // cached subset batches
  at::Tensor zf_, labels_;
  bool classes_ = true;
  double p_ = 0;
  int64_t evals_ = 0;
  std::map<std::string, std::pair<std::string, at::Tensor>> bias_after_;  // bias -> (layer, corrected)
};

}  // namespace mixq
