// Evaluation of a model (any executor: float, or fake-quantized) on a dataset: top-1 accuracy
// where there are labels and class scores, and, against a reference (the float model run on the
// same inputs, or stored outputs), task-agnostic fidelity for every output (exec/fidelity.h).
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "exec/executor.h"
#include "exec/fidelity.h"

namespace mixq {

// The reference outputs of samples [begin, end) (graph output order), e.g. a float executor run
// on the batch, or slices of stored arrays.
using ReferenceFn = std::function<std::vector<at::Tensor>(const Batch& batch, int64_t begin, int64_t end)>;

struct EvalOptions {
  // Samples per batch; 0: automatic (auto_batch_size with kEvalMaxBatch, kBatchBytes), so a
  // 224x224 model's batch activations stay bounded instead of growing with the batch.
  int64_t batch_size = 0;
  bool keep_outputs = false;  // return every output, all samples (EvalResult::outputs)
  bool progress = true;       // progress bar on stderr
  std::string label = "eval";
  ReferenceFn reference;      // when set: fidelity of every output against it
  bool reference_top1 = false;  // also score the reference's first output against the labels
};

// Top-1 and cross-entropy of class scores against labels.
struct ClassScore {
  int64_t correct = 0;
  double top1 = 0;  // percent
  double loss = 0;  // mean cross-entropy
};

struct EvalResult {
  int64_t samples = 0;
  // Set when the dataset has labels and the first output is [batch, classes] float scores.
  bool has_top1 = false;
  int64_t correct = 0;
  double top1 = 0;       // percent
  double loss = 0;       // mean cross-entropy of the first output vs labels
  double seconds = 0;    // wall time of the whole loop (reference runs included)
  std::vector<at::Tensor> outputs;  // keep_outputs: each graph output over all samples
  std::vector<OutputFidelity> fidelity;  // with a reference
  std::optional<ClassScore> reference_score;  // with a reference, labels and reference_top1
};

// True when `out` (a batch of the first output) is [batch, classes] float scores.
bool looks_like_class_scores(const at::Tensor& out);

// One batch of outputs as the quantized model is compared with the float one (the sensitivity
// probe, plan measurement, LAPQ's loss): one [N, classes] float tensor as is (*classes = true),
// else every float batch-first output flattened per sample, side by side (*classes = false).
// `model` names the model in the error when there is no such output.
at::Tensor comparable_outputs(const std::vector<at::Tensor>& outs, bool* classes, const std::string& model);

constexpr int64_t kEvalMaxBatch = 250;
// The byte budget of one batch's largest activation (glibc's mmap threshold tops out at 32 MiB:
// larger buffers are fresh page-faulted mmaps on every allocation).
constexpr size_t kBatchBytes = size_t{32} << 20;
// The most samples (a power of two up to max_batch, or max_batch itself when every activation
// fits) whose largest per-sample value of one float run of `ex` on the first sample of `data`
// stays within `bytes`. On a 28x28 fixture that is max_batch; on ResNet-50 at 224x224, 8.
int64_t auto_batch_size(Executor& ex, const Dataset& data, int64_t max_batch, size_t bytes = kBatchBytes);

// Runs the model over the whole dataset. Never needs labels: without them (or without class
// scores) only the outputs, fidelity and timing are reported.
EvalResult evaluate(Executor& ex, const Dataset& data, const EvalOptions& opts = {});
// The same for any model function (e.g. the packed runtime): inputs -> outputs in the order of
// `output_names`; `model_name` names it in messages. batch_size 0 means kEvalMaxBatch here (no
// executor to measure activations with).
using ModelFn = std::function<std::vector<at::Tensor>(const std::vector<at::Tensor>& inputs)>;
EvalResult evaluate(const ModelFn& model, const std::vector<std::string>& output_names, const std::string& model_name,
                    const Dataset& data, const EvalOptions& opts = {});

// The metric a report leads with (--metric, `auto` resolved) and its value: top-1 % or the
// fidelity summary (exec/fidelity.h); no value when the evaluation has neither or it is not finite.
struct LeadMetric {
  Metric metric = Metric::kAuto;
  std::optional<double> value;
};
LeadMetric lead_metric(Metric requested, const EvalResult& r);

// Writes r.outputs (EvalOptions::keep_outputs) to an .npz, one array per output name, atomically.
void save_outputs(const std::string& path, const std::vector<std::string>& names, const EvalResult& r);

// A reference that runs `ref` on each batch.
ReferenceFn reference_executor(Executor& ref);
// A reference from stored outputs (name -> [samples, ...], e.g. an .npz of ONNX Runtime's
// outputs) for a graph with these outputs. Throws kInvalidData naming missing outputs or a
// sample-count mismatch.
ReferenceFn reference_arrays(std::map<std::string, at::Tensor> arrays, const std::vector<ValueInfo>& outputs,
                             int64_t samples, const std::string& what);

}  // namespace mixq
