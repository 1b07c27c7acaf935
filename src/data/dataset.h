// Datasets: where calibration and evaluation samples come from.
//
// A dataset yields batches of model inputs (one tensor per model input, batch dimension first)
// and, when it has them, int64 class labels. Specs understood by open_dataset():
//   fmnist:train | fmnist:test [ :N ]   Fashion-MNIST from Debian's dataset-fashion-mnist
//                                       (first N samples), preprocessed as Preprocess says
//   FILE.npz                            arrays named after the model inputs (or x / input / data
//                                       for a single-input model), labels in y / labels
//   DIR/                                the same names as DIR/<name>.npy files
//   FILE.npy                            one array of inputs for a single-input model (no labels)
//   FILE.pb | DIR with input_<i>.pb     ONNX TensorProto files, as in ONNX's test data (no labels)
// Arrays from files are used as they are (already preprocessed) and must match the model's
// declared input dtype and non-batch dimensions; mismatches are kInvalidData errors naming the
// file and both shapes.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "graph/ir.h"

namespace mixq {

struct Batch {
  std::vector<at::Tensor> inputs;  // one per model input, [n, ...]
  at::Tensor labels;               // int64 [n], undefined when the dataset has none
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual bool has_labels() const = 0;
  // Samples [begin, end), 0 <= begin < end <= size().
  virtual Batch get(int64_t begin, int64_t end) const = 0;
  virtual std::string describe() const = 0;  // "fmnist:test (10000 samples)"
};

// Pixel preprocessing for image datasets stored as uint8: x = u8 * scale; x = (x - mean) / std,
// in float32, in that order (the order the fixtures were trained and evaluated with).
struct Preprocess {
  float scale = 1.0f / 255.0f;
  float mean = 0.0f;
  float std = 1.0f;
};

// Reads mixq.input_scale / mixq.input_mean / mixq.input_std from the model's metadata_props;
// fields that are absent keep the defaults above. `found` tells whether any was present.
Preprocess preprocess_from_metadata(const Graph& g, bool* found = nullptr);

// Opens a dataset for a model with the given inputs (their declared dtypes/shapes are checked).
std::unique_ptr<Dataset> open_dataset(const std::string& spec, const std::vector<ValueInfo>& model_inputs,
                                      const Preprocess& pp = {});

// Samples already in memory: one tensor per model input ([n, ...]) and optional int64 labels [n]
// (undefined: none); `name` is what describe() reports.
std::unique_ptr<Dataset> memory_dataset(std::vector<at::Tensor> inputs, at::Tensor labels, std::string name);

// Fashion-MNIST files; MIXQ_FMNIST_DIR overrides the Debian location.
std::string fmnist_dir();

}  // namespace mixq
