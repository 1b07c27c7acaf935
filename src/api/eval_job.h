// The job behind `mixq eval` and `mixq.eval(...)`: run an ONNX model over a dataset on the
// executor; top-1 where the data has labels and class scores, the fidelity of every output to a
// --reference (a float .onnx run on the same inputs, or an .npz of stored outputs), and every
// output kept or saved on request. No labels are needed for anything but top-1.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "exec/evaluate.h"

namespace mixq {

struct EvalJob {
  std::string model;
  std::string data = "fmnist:test";
  int64_t batch = 0;  // 0: automatic (exec/evaluate.h auto_batch_size)
  PreprocessOverride pre;
  std::string reference;         // "" : none
  std::string metric = "auto";   // what the summary leads with (exec/fidelity.h)
  std::string save_outputs;      // .npz of every output
  std::string save_logits;       // .npy of the first output
  bool keep_outputs = false;     // keep every output in the result (Python returns them)
};

struct EvalJobResult {
  EvalResult result;
  std::unique_ptr<Dataset> data;
  std::vector<std::string> output_names;
  nlohmann::json json;           // api/eval_report.h eval_json
};

EvalJobResult run_eval(const EvalJob& job, bool progress);

}  // namespace mixq
