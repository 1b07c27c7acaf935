// The end-to-end quantization job behind `mixq quantize` and `mixq demo`:
// load -> prepare (fold BN) -> plan (allocator or user plan) -> quantize (calibrate) ->
// simulate + evaluate -> outputs. Each stage's artifact is kept in the result for reports.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "data/calib_sampling.h"
#include "data/dataset.h"
#include "exec/evaluate.h"
#include "graph/fold_bn.h"
#include "quant/methods/floorceil.h"
#include "quant/methods/method.h"
#include "quant/plan.h"
#include "quant/qmodel.h"
#include "quant/quantize.h"
#include "quant/sparq_apply.h"
#include "search/allocator.h"
#include "search/sensitivity.h"

namespace mixq {

struct QuantizeJob {
  std::string model_path;
  std::string calib = "fmnist:train:1024";
  std::string calib_sample = "first";  // --calib-sample first | random (data/calib_sampling.h; seed: qopts.seed)
  std::string eval;                 // dataset to evaluate on ("" = skip evaluation)
  bool eval_float = true;           // also evaluate the float model
  std::string method = "minmax";    // quant/methods/method.h table: minmax | mse | percentile | kl |
                                    // adaround | brecq | adaquant | lapq | lapq-init
  ReconOptions recon;               // reconstruction methods, BN re-estimation, bias tuning
  int64_t recon_iters = -1;         // --iters: ReconOptions::scale_iters (-1 = paper defaults)
  PlanDefaults defaults;            // bits, granularity, symmetry, pinning
  std::string search = "uniform";   // allocator (search/allocator.h)
  SearchOptions search_opts;
  FloorCeilOptions floorceil;       // --search floorceil: the rounding search after the method
  std::string plan_path;            // apply this plan instead of searching
  std::string hw_path;              // hardware spec: allowed bits per op, shared groups (search/hw_spec.h)
  std::string table_path;           // sensitivity table to allocate from instead of measuring one
  SensitivityOptions sens;          // table-driven searches: calibration subset, cache file
  QuantizeOptions qopts;
  int64_t eval_batch = 0;  // 0: automatic (exec/evaluate.h auto_batch_size)
  Metric metric = Metric::kAuto;    // what the report leads with (exec/fidelity.h)
  PreprocessOverride preprocess;    // --scale/--mean/--std over the model's metadata
  std::vector<std::string> input_shapes;  // --input-shape NAME:d0,d1,... (else the first calib sample)
  std::string save_outputs;         // .npz of the quantized model's outputs on the eval data
  bool eval_weights_only = false;   // --eval-weights-only: also evaluate AdaRound/BRECQ's rounding
                                    // phase alone (weights quantized, activations float)
  bool report_data = false;         // keep the HTML report's front and sensitivity matrix
};

struct QuantizeResult {
  Graph prepared;                   // BN-folded float graph
  int bn_folded = 0;
  std::vector<FoldedBn> folded;     // what each fold did (BN re-estimation needs it)
  nlohmann::json method_report = nlohmann::json::object();  // per-unit losses and times
  QuantPlan plan;
  QuantizedModel qmodel;
  // With --eval: quant_eval carries the fidelity of every output against the float model on the
  // same inputs; float_eval / quant_eval top-1 where the data has labels and class scores.
  std::optional<EvalResult> float_eval, quant_eval;
  std::optional<EvalResult> quant_eval_before_finish;  // before floor/ceil, --bn-reestimate, --bias-tune
  std::optional<EvalResult> quant_eval_weights_only;  // --eval-weights-only
  SparqCounters sparq;              // what the SPARQ activations saw during the quantized eval
  nlohmann::json allocation;        // allocation summary (api/allocate_step.h)
  nlohmann::json report_data = nlohmann::json::object();  // with QuantizeJob::report_data
  double seconds_search = 0, seconds_quantize = 0, seconds_total = 0;
};

QuantizeResult run_quantize(const QuantizeJob& job);

// The job's calibration draw: --calib-sample with --seed.
CalibSampling calib_sampling_of(const QuantizeJob& job);

// The `--json` / `--report` object: top1_float, top1_quant, avg_wbits, size_bytes, size_ratio,
// bops, seconds, plan summary per layer.
nlohmann::json quantize_report(const QuantizeJob& job, const QuantizeResult& r);

// What `--report-html` shows (api/report_html.h) from the `--json` object and the result.
nlohmann::json quantize_report_view(const nlohmann::json& rep, const QuantizeResult& r);

// Applies --method's initial range estimators (quant/methods/method.h) to the defaults.
void apply_method(const std::string& method, PlanDefaults& d);

}  // namespace mixq
