// The job behind `mixq run` and `mixq.run(...)`: a packed .mxq model on the libtorch-free runtime
// over a dataset, scored like `eval`: top-1 where the data has labels and the first output is
// [batch, classes] scores; with a reference (the float .onnx run on the same inputs, or an .npz of
// stored outputs) the fidelity of every output. No labels needed.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "exec/evaluate.h"
#include "runtime/runtime.h"

namespace mixq {

struct RunJob {
  std::string model;                 // .mxq
  std::string data = "fmnist:test";
  int64_t batch = 250;
  std::string isa = "auto";          // auto (MIXQ_ISA or cpuid), ref, avx2, avx512
  int threads = 0;                   // 0: one (api/rt_data.h runtime_options)
  std::string reference, save_outputs, metric = "auto";
  PreprocessOverride pre;
  bool keep_outputs = false;         // keep every output in the result (Python returns them)
};

struct RunJobResult {
  EvalResult result;
  std::unique_ptr<Dataset> data;
  std::vector<std::string> output_names;
  std::vector<rt::LayerPath> layers;  // the kernel path each quantized layer took
  // eval_json + {isa, threads, integer_layers, layers, weight_bytes}
  nlohmann::json json;
};

RunJobResult run_packed(const RunJob& job, bool progress);

}  // namespace mixq
