// Datasets: where calibration and evaluation samples come from.
//
// A dataset yields batches of model inputs (one tensor per model input, batch dimension first)
// and, when it has them, int64 class labels. Specs understood by open_dataset():
//   fmnist:train | fmnist:test [ :N ]   Fashion-MNIST from Debian's dataset-fashion-mnist
//                                       (first N samples), preprocessed as Preprocess says; for
//                                       a model whose input is [N, 3, H, W] or another static
//                                       H x W, the gray image is repeated over the channels and
//                                       resized (bilinear) before preprocessing
//   FILE.npz                            arrays named after the model inputs (or x / input / data
//                                       for a single-input model), labels in y / labels
//   DIR/                                the same names as DIR/<name>.npy files
//   FILE.npy                            one array of inputs for a single-input model (no labels)
//   FILE.pb | DIR with input_<i>.pb     ONNX TensorProto files, as in ONNX's test data (no labels)
//   mem:NAME                            arrays registered in this process (register_memory_arrays:
//                                       the Python module's NumPy data), read like an .npz of them
// Float arrays from files are used as they are (already preprocessed); uint8 arrays feeding a
// float input are preprocessed with Preprocess (raw images). Arrays must match the model's
// declared input dtype and non-batch dimensions; mismatches are kInvalidData errors naming the
// file and both shapes.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <optional>
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

// Pixel preprocessing for image data stored as uint8 (Fashion-MNIST, or uint8 arrays fed to a
// float input): x = u8 * scale; x = (x - mean[c]) / std[c] in float32, in that order (the order
// the fixtures were trained and evaluated with). mean/std hold one value for every channel or one
// per channel (axis 1, NCHW: e.g. ImageNet's 0.485,0.456,0.406 / 0.229,0.224,0.225).
struct Preprocess {
  float scale = 1.0f / 255.0f;
  std::vector<float> mean = {0.0f};
  std::vector<float> std = {1.0f};
  // Applies the transform to a uint8 batch [N, C, ...] (any integer type), returning float32.
  // Throws kInvalidData when per-channel values do not match C.
  at::Tensor apply(const at::Tensor& u8, const std::string& what) const;
};

// Command-line overrides of a model's preprocessing (--scale/--mean/--std): what is set wins.
struct PreprocessOverride {
  std::optional<float> scale;
  std::optional<std::vector<float>> mean, std;
  bool any() const { return scale || mean || std; }
  Preprocess over(Preprocess base) const {
    if (scale) base.scale = *scale;
    if (mean) base.mean = *mean;
    if (std) base.std = *std;
    return base;
  }
};

// "0.485,0.456,0.406" -> {0.485, 0.456, 0.406}; throws kInvalidArgument naming `what`.
std::vector<float> parse_float_list(const std::string& text, const std::string& what);

// Reads mixq.input_scale / mixq.input_mean / mixq.input_std (a number or a comma list) from the
// model's metadata_props; fields that are absent keep the defaults above. `found` tells whether
// any was present.
Preprocess preprocess_from_metadata(const Graph& g, bool* found = nullptr);

// Opens a dataset for a model with the given inputs (their declared dtypes/shapes are checked).
std::unique_ptr<Dataset> open_dataset(const std::string& spec, const std::vector<ValueInfo>& model_inputs,
                                      const Preprocess& pp = {});

// Samples already in memory: one tensor per model input ([n, ...]) and optional int64 labels [n]
// (undefined: none); `name` is what describe() reports.
std::unique_ptr<Dataset> memory_dataset(std::vector<at::Tensor> inputs, at::Tensor labels, std::string name);

// Registers arrays (named as in an .npz: model inputs or x, labels in y / labels) under the
// dataset spec "mem:NAME" until unregistered; re-registering a name replaces its arrays. The
// tensors are shared, not copied. Thread-safe.
void register_memory_arrays(const std::string& name, std::map<std::string, at::Tensor> arrays);
void unregister_memory_arrays(const std::string& name);

// A view of the first n samples of `base` (n <= 0 or n > size: all of them); `base` must outlive it.
std::unique_ptr<Dataset> head_dataset(const Dataset& base, int64_t n);

// Fashion-MNIST files; MIXQ_FMNIST_DIR overrides the Debian location.
std::string fmnist_dir();

}  // namespace mixq
