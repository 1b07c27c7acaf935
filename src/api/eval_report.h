// What `eval` (executor) and `run` (packed runtime) share, for every front end: the --reference
// choice (a float .onnx run on the same inputs, or an .npz of stored outputs) and the JSON fields
// of an evaluation.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "exec/evaluate.h"

namespace mixq {

// Sets opts.reference (and reference_top1) from `reference` ("" : none). An .onnx model's
// executor is kept in `holder`.
void set_reference(const std::string& reference, const std::vector<ValueInfo>& outputs, int64_t samples,
                   EvalOptions& opts, std::unique_ptr<Executor>& holder);
// {model, data, top1, correct, samples, loss, seconds, images_per_second, metric, metric_value
// [, reference, fidelity, top1_reference]}
nlohmann::json eval_json(const EvalResult& r, Metric metric, const std::string& model, const std::string& data,
                         const std::string& reference);

}  // namespace mixq
