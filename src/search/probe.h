// The sensitivity table's instrument: the reference plan (every unpinned layer at the reference
// bits) simulated on the first calibration samples, against the float model's logits, with any
// few layers' weights requantized at other bits or granularity through executor hooks, and a few
// activation tensors quantized at other bits. The table measures one layer (or one activation
// tensor) at a time with it; the additivity repair (search/additivity.h) measures pairs and whole
// plans with the same instrument, so their numbers are comparable to the table's to the last bit.
#pragma once

#include <ATen/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "data/dataset.h"
#include "graph/ir.h"
#include "quant/plan.h"
#include "quant/qmodel.h"
#include "search/probe_cut_store.h"

namespace mixq {

class Executor;

// Metrics of logits against the float logits: relative output noise ||z - zf||^2 / ||zf||^2, KL
// (float || quantized), mean cross-entropy and top-1 % (without labels: the fidelity loss and the
// agreement with the float model, see compare_to_float). Models whose output is not one
// [N, classes] tensor (detectors, embeddings, multi-output): every float output flattened per
// sample, KL = noise (the fidelity loss).
struct ProbeMetrics {
  double noise = 0, kl = 0, loss = 0, top1 = 0;
};

// Metrics of outputs z (exec/evaluate.h comparable_outputs) against the float model's zf. With labels (class scores
// only): cross-entropy and top-1. Without labels: loss = kl, and top1 is the agreement with the
// float model: % of samples with the same argmax (class scores), or 100 x the mean per-sample
// cosine similarity (other outputs, where kl = loss = noise).
ProbeMetrics compare_to_float(const at::Tensor& zf, const at::Tensor& z, bool classes, const at::Tensor& labels);

// Weight dequantized at `bits` with the layer's scheme and range method (stochastic rounding is
// measured as nearest: a table must not depend on one noise draw).
at::Tensor requantized_weight(const at::Tensor& w, const LayerPlan& L, int bits);
// The same with another weight scheme (bits and granularity; rounding as above).
at::Tensor requantized_weight(const at::Tensor& w, const LayerPlan& L, const QScheme& s);

// Departures from the reference plan: weight schemes by layer name, activation bits by tensor
// name (the tensor every reading layer quantizes).
struct ProbeChange {
  std::map<std::string, QScheme> weights;
  std::map<std::string, int> acts;
  bool empty() const { return weights.empty() && acts.empty(); }
};

// Automatic probe batches: the most samples (a power of two, at most kProbeMaxBatch) whose largest
// per-sample activation stays within kBatchBytes (exec/evaluate.h auto_batch_size: larger buffers
// are fresh page-faulted mmaps in glibc; on a 224x224 mobile net at 128 samples per batch that was
// ~7% of the table's time). Measurements do not depend on the batching where the executor's
// kernels are batch-independent (checked on the zoo's mobilenet_v3_small: the same table to the
// last bit at 16, 32, 64 and 128 samples per batch).
constexpr int64_t kProbeMaxBatch = 256;
// Bytes of cut values (see move_cut) kept in memory by default; past it they spill to a file
// (search/probe_cut_store.h). --max-memory sets it lower.
constexpr int64_t kProbeCutBudget = int64_t{2} << 30;
// The batch size `ex` (a float executor of the model) gets under that rule, measured on the first
// sample.
int64_t probe_batch_size(Executor& ex, const Dataset& samples);

class SensitivityProbe {
 public:
  // `ref`: the reference plan. Quantizes it once (activation ranges from the samples, calibrated in
  // batches of `batch_size`, or sized as quantize sizes them) and runs the float model once for the float
  // logits. batch_size <= 0: the probe's runs use probe_batch_size. `cut_budget_bytes`: the cut's
  // values held in memory, the rest in a spill file in `spill_dir` ("" = $TMPDIR or /tmp); < 0: no
  // limit. The measurements do not depend on it.
  SensitivityProbe(const Graph& prepared, const QuantPlan& ref, const Dataset& samples, int64_t batch_size,
                   int64_t cut_budget_bytes = kProbeCutBudget, std::string spill_dir = "");
  // Bytes of the current cut written to the spill file (0: all resident).
  int64_t cut_spilled_bytes() const { return cut_.spilled_bytes(); }
  ~SensitivityProbe();

  const ProbeMetrics& float_metrics() const { return float_; }
  const ProbeMetrics& reference() const { return ref_; }
  bool has_labels() const { return labels_.defined(); }
  int64_t samples() const { return samples_; }

  // The reference plan with the given layers' weights replaced (layer name -> dequantized weight).
  ProbeMetrics run(const std::map<std::string, at::Tensor>& weights);
  // The reference plan with weight schemes and activation bits changed. An activation at other
  // bits gets the range its method computes at those bits from the same calibration statistics
  // (ranges of different tensors do not depend on each other: calibration runs on dequantized
  // weights without activation quantization, quant/quantize.h).
  ProbeMetrics run_change(const ProbeChange& change);
  // run_change for each change, measured in the order that re-runs least (weight changes by their
  // first changed layer); results in the order given.
  std::vector<ProbeMetrics> run_changes(const std::vector<ProbeChange>& changes);
  // The layers reading each quantized activation tensor (plan layer names), by tensor.
  const std::map<std::string, std::vector<std::string>>& act_readers() const { return readers_; }

 private:
  ProbeMetrics metrics_of(const at::Tensor& z) const;
  // `extra`: values fed besides the inputs (replaced weights, by the value name the layer reads).
  at::Tensor logits(Executor& ex, const std::map<std::string, at::Tensor>& extra = {});
  // Outputs of one batch as the probe compares them (class scores, or all float outputs flattened).
  at::Tensor flatten_outputs(const std::vector<at::Tensor>& outs);
  // The reference model's values crossing the cut just before sim node `k` (every value made
  // before it and read at or after it, or a graph output made before it), for every batch, so
  // that a change at node k re-runs only the nodes from k on. Layers are measured in graph
  // order, so the cut moves forward, computing only the nodes between two cuts.
  void move_cut(int k);
  // Where a run with these layers' weights changed starts: the sim node of the first of them, moved
  // back to the start of any active fusion group it falls inside; -1 for a whole-model run (a layer
  // that is not in the graph, no change, or MIXQ_PROBE_FULL=1).
  int cut_point(const std::map<std::string, at::Tensor>& weights);
  at::Tensor logits_from_cut(Executor& ex, const std::map<std::string, at::Tensor>& extra);
  ProbeMetrics run_on(Executor& ex, const std::map<std::string, at::Tensor>& weights);
  // Every activation tensor's quantizer with all of them at `bits` (one calibration pass per bits).
  const std::map<std::string, QuantizedActivation>& acts_at(int bits);

  const Graph& prepared_;
  QuantPlan ref_plan_;
  std::vector<Batch> batches_;
  at::Tensor zf_, labels_;
  bool classes_ = true;  // one [N, classes] output; else all float outputs flattened, KL := noise
  std::unique_ptr<Executor> sim_;
  QuantizedModel qm_;                           // the reference plan quantized
  std::map<int, std::map<std::string, QuantizedActivation>> acts_at_;
  std::map<std::string, std::vector<std::string>> readers_;
  std::map<std::string, std::string> dq_name_;  // layer -> the tensor its QDQ node reads as weight
  ProbeMetrics float_, ref_;
  int64_t samples_ = 0;
  int64_t calib_batch_ = 0;                      // activation calibration batches (0: quantize's sizing)
  std::map<std::string, int> layer_node_;        // layer -> its node index in the sim graph
  std::vector<char> sim_static_;                 // per sim node: computed from constants only
  int cut_node_ = -1;                            // -1: no cut cached
  std::vector<std::pair<int, int>> spans_;       // the sim executor's active fusion groups
  bool spans_known_ = false;
  int64_t cut_budget_ = kProbeCutBudget;
  std::string spill_dir_;
  CutStore cut_{0, -1, ""};  // per batch: value name -> tensor
};

}  // namespace mixq
