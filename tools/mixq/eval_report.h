// What `eval` (executor) and `run` (packed runtime) share: the --reference choice (a float .onnx
// run on the same inputs, or an .npz of stored outputs), the JSON fields and the terminal lines of
// an evaluation.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "exec/evaluate.h"

namespace mixq::cli {

// Sets opts.reference (and reference_top1) from `reference` ("" : none). An .onnx model's
// executor is kept in `holder`.
void set_reference(const std::string& reference, const std::vector<ValueInfo>& outputs, int64_t samples,
                   EvalOptions& opts, std::unique_ptr<Executor>& holder);
// {model, data, top1, correct, samples, loss, seconds, images_per_second, metric, metric_value
// [, reference, fidelity, top1_reference]}
nlohmann::json eval_json(const EvalResult& r, Metric metric, const std::string& model, const std::string& data,
                         const std::string& reference);
// "MODEL on DATA: top-1 ..." (or samples and speed without top-1) + `suffix`, then the reference's
// top-1 and the fidelity lines.
void print_eval(const EvalResult& r, const std::string& model, const Dataset& data, const std::string& reference,
                const std::string& suffix = "");

}  // namespace mixq::cli
