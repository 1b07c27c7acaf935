// Task-agnostic quality: how far a model's outputs are from reference outputs (the float model,
// or stored outputs such as ONNX Runtime's) on the same inputs. Needs no labels and works for any
// output shape: detectors, OCR, segmentation, embeddings, regression, classifiers.
//
// Per output, accumulated over batches:
//   sqnr_db      10 log10(sum ref^2 / sum (x - ref)^2); +inf when identical (JSON: null)
//   cosine       mean over samples of the cosine similarity of the flattened per-sample outputs
//   max_abs_err  max |x - ref|
//   rel_err      max |x - ref| / max |ref| (the conformance tests' measure)
//   kl           mean over rows of KL(softmax(ref) || softmax(x)) along the last axis (float
//                outputs with a last axis of >= 2 elements)
//   top1_agree   % of rows whose argmax over the last axis agrees, where the last axis looks like
//                classes: rank 2 [N, C] or rank 3 [N, T, C] float output with C >= 2
// Integer outputs (indices, counts) get sqnr/max_abs_err/rel_err over their values cast to double.
#pragma once

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace mixq {

struct OutputFidelity {
  std::string name;
  std::vector<int64_t> sample_shape;  // one sample's shape (batch dim dropped)
  int64_t samples = 0;
  double sqnr_db = 0, cosine = 0, max_abs_err = 0, rel_err = 0;
  std::optional<double> kl, top1_agree;
};

class FidelityAccumulator {
 public:
  explicit FidelityAccumulator(std::vector<std::string> output_names);
  // One batch: the reference's and the tested model's outputs, in the same order, batch first.
  // Throws kInvalidData naming the output when shapes differ.
  void add(const std::vector<at::Tensor>& ref, const std::vector<at::Tensor>& test);
  std::vector<OutputFidelity> result() const;
  bool empty() const { return samples_ == 0; }

 private:
  struct Acc {
    double sig = 0, noise = 0, cos_sum = 0, max_abs = 0, max_ref = 0, kl_sum = 0;
    int64_t kl_rows = 0, agree = 0, rows = 0;
    bool has_kl = false, classes = false;
    std::vector<int64_t> shape;
  };
  std::vector<std::string> names_;
  std::vector<Acc> acc_;
  int64_t samples_ = 0;
};

// Metrics that reports and budgets can be stated in (--metric).
enum class Metric { kAuto, kTop1, kSqnr, kCosine, kKl, kMaxAbs };
Metric parse_metric(const std::string& s);  // auto|top1|sqnr|cos|kl|maxabs (kInvalidArgument otherwise)
const char* metric_name(Metric m);
// `auto`: top-1 when the evaluation has it (labels, and the first output is [N, classes]), else sqnr.
Metric resolve_metric(Metric m, bool has_top1);
// The summary value of a metric over all outputs: sqnr/cos/kl/maxabs the mean (max for maxabs)
// over outputs that have it; top1 without labels: the first output's top-1 agreement. Empty when
// no output has it.
std::optional<double> summary_value(Metric m, const std::vector<OutputFidelity>& f);
// Higher is better for top1/sqnr/cos; lower for kl/maxabs.
bool higher_is_better(Metric m);

// [{name, shape, samples, sqnr_db, cosine, max_abs_err, rel_err, kl, top1_agreement}]
nlohmann::json fidelity_json(const std::vector<OutputFidelity>& f);
// One line per output for terminal reports: "  out 'y' [10]: SQNR 38.2 dB, cos 0.99991, ...".
std::string fidelity_text(const std::vector<OutputFidelity>& f);

}  // namespace mixq
