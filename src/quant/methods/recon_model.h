// The model as reconstruction methods see it: two executors over the prepared (BN-folded) graph.
//
//  - fp(): the float model, for targets (unit outputs) and Fisher gradients.
//  - quant(): a training graph in which every quantized layer's weight and bias can be replaced
//    by any tensor (float, hard-quantized, soft-rounded, learned), and every quantized activation
//    T is read by its layers through an inserted Identity "T::mixq_q" whose value a differentiable
//    fake quantizer replaces when enabled. Only the quantized layers read the quantized value,
//    exactly as in the QDQ graph (quant/qdq.h), so what is optimised is what is exported.
//
// Cached unit data (inputs from quant(), float outputs from fp()) is collected with collect().
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "exec/executor.h"
#include "quant/methods/tensor_store.h"
#include "quant/qmodel.h"

namespace mixq {

// Per-tensor activation fake quantizer (STE); `scale` may be learned.
struct ActQuant {
  std::string tensor;
  at::Tensor scale;       // 0-d float32
  at::Tensor zero_point;  // 0-d float32 (fixed)
  double qmin = 0, qmax = 255;
  bool enabled = false;
  // Called with the tensor's value before it is quantized (when set): lets a quantizer take its
  // range from the values that reach it through the quantizers before it (BRECQ's code does).
  std::function<void(ActQuant&, const at::Tensor&)> on_value;

  // Scale, zero point and grid from a calibrated activation (enabled stays as it is).
  void load(const QuantizedActivation& a);
};

class ReconModel {
 public:
  // quant() starts with every layer reading its hard-quantized weight (qm's codes) and every
  // activation quantizer built from qm.activations, disabled.
  explicit ReconModel(QuantizedModel& qm);

  // The value quant()'s quantized layers read for activation tensor T ("T::mixq_q"): a hook on it
  // replaces what every quantized reader of T sees.
  static std::string quantized_value(const std::string& tensor);

  Executor& fp() { return *fp_; }
  Executor& quant() { return *quant_; }
  QuantizedModel& qmodel() { return qm_; }

  QuantizedWeight& weight(const std::string& layer);
  // The layer's bias initializer name ("" if none).
  const std::string& bias_name(const std::string& layer) const;
  // What quant() reads for the layer's weight / bias: undefined = the float initializer.
  void set_weight(const std::string& layer, at::Tensor w);
  void set_bias(const std::string& layer, at::Tensor b);
  // The weight the layer's current codes and parameters dequantize to.
  at::Tensor dequantized_weight(const std::string& layer);
  void use_quantized_weight(const std::string& layer) { set_weight(layer, dequantized_weight(layer)); }

  // The activation quantizer of a layer's input (nullptr when the input is not quantized).
  ActQuant* act_of_layer(const std::string& layer);
  ActQuant* act(const std::string& tensor);
  std::vector<ActQuant*> acts();
  // Copies the (possibly learned) activation scales back into qm.activations.
  void store_activation_params();
  // Re-reads scale / zero point / grid of every activation quantizer from qm.activations (after
  // they were recalibrated); enabled flags stay as they are.
  void load_activation_params();

  // Runs `data` through `ex` in batches of `batch` and stores each value of `names` per sample.
  std::vector<TensorStore> collect(Executor& ex, const Dataset& data, const std::vector<std::string>& names,
                                   CacheBudget* budget, int64_t batch, const std::string& label, bool progress);
  // Feeds for `ex` from a batch of the dataset (graph input name -> tensor).
  std::map<std::string, at::Tensor> feeds(const Batch& b) const;

 private:
  QuantizedModel& qm_;
  std::unique_ptr<Executor> fp_, quant_;
  std::map<std::string, size_t> weight_index_;      // layer -> qm.weights index
  std::map<std::string, std::string> bias_of_;      // layer -> bias initializer
  std::map<std::string, at::Tensor> current_;       // initializer name -> replacement
  std::map<std::string, std::unique_ptr<ActQuant>> acts_;  // tensor -> quantizer
  std::map<std::string, std::string> act_of_layer_;  // layer -> tensor
};

}  // namespace mixq
