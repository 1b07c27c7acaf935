#include "data/dataset.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <sstream>

#include "data/idx.h"
#include "data/npy.h"
#include "mixq/error.h"
#include "onnx/import.h"

namespace mixq {

namespace fs = std::filesystem;

std::string fmnist_dir() {
  const char* env = std::getenv("MIXQ_FMNIST_DIR");
  return env && *env ? env : "/usr/share/datasets/fashion-mnist";
}

std::vector<float> parse_float_list(const std::string& text, const std::string& what) {
  std::vector<float> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    std::string tok = text.substr(pos, end - pos);
    char* rest = nullptr;
    float v = std::strtof(tok.c_str(), &rest);
    MIXQ_CHECK(!tok.empty() && rest && *rest == 0 && std::isfinite(v), ErrorKind::kInvalidArgument, what, ": '",
               text, "' is not a number or a comma-separated list of numbers");
    out.push_back(v);
    pos = end + 1;
  }
  return out;
}

at::Tensor Preprocess::apply(const at::Tensor& u8, const std::string& what) const {
  at::Tensor x = u8.to(at::kFloat) * scale;
  auto per_channel = [&](const std::vector<float>& v, const char* name) {
    if (v.size() == 1) return at::full({1}, v[0], at::kFloat);
    MIXQ_CHECK(x.dim() >= 2 && x.size(1) == static_cast<int64_t>(v.size()), ErrorKind::kInvalidData, what,
               ": ", v.size(), " per-channel ", name, " values for data with ", x.dim() >= 2 ? x.size(1) : 0,
               " channels (axis 1)");
    std::vector<int64_t> shape(x.dim(), 1);
    shape[1] = static_cast<int64_t>(v.size());
    return at::tensor(v, at::kFloat).reshape(shape);
  };
  for (float s : std) MIXQ_CHECK(s != 0.0f, ErrorKind::kInvalidArgument, what, ": std must not be 0");
  return (x - per_channel(mean, "mean")) / per_channel(std, "std");
}

Preprocess preprocess_from_metadata(const Graph& g, bool* found) {
  Preprocess pp;
  bool any = false;
  auto read = [&](const char* key, std::vector<float>& dst) {
    auto it = g.metadata.find(key);
    if (it == g.metadata.end()) return;
    dst = parse_float_list(it->second, g.source_path + ": metadata '" + key + "'");
    any = true;
  };
  std::vector<float> scale = {pp.scale};
  read("mixq.input_scale", scale);
  MIXQ_CHECK(scale.size() == 1, ErrorKind::kInvalidModel, g.source_path, ": metadata mixq.input_scale must be one number");
  pp.scale = scale[0];
  read("mixq.input_mean", pp.mean);
  read("mixq.input_std", pp.std);
  for (float s : pp.std)
    MIXQ_CHECK(s != 0.0f, ErrorKind::kInvalidModel, g.source_path, ": metadata mixq.input_std is 0");
  if (found) *found = any;
  return pp;
}

namespace {

// Samples held in memory: one tensor per model input plus optional labels.
class TensorDataset final : public Dataset {
 public:
  TensorDataset(std::vector<at::Tensor> inputs, at::Tensor labels, std::string name)
      : inputs_(std::move(inputs)), labels_(std::move(labels)), name_(std::move(name)) {}
  int64_t size() const override { return inputs_.empty() ? 0 : inputs_[0].size(0); }
  bool has_labels() const override { return labels_.defined(); }
  Batch get(int64_t b, int64_t e) const override {
    Batch out;
    for (const auto& t : inputs_) out.inputs.push_back(t.slice(0, b, e));
    if (labels_.defined()) out.labels = labels_.slice(0, b, e);
    return out;
  }
  std::string describe() const override {
    return name_ + " (" + std::to_string(size()) + " samples)";
  }

 private:
  std::vector<at::Tensor> inputs_;
  at::Tensor labels_;
  std::string name_;
};

// Fashion-MNIST: uint8 images kept as loaded; preprocessing applied per batch.
class FmnistDataset final : public Dataset {
 public:
  // channels/height/width: what the model takes (1, 28, 28 for the fixtures).
  FmnistDataset(at::Tensor images, at::Tensor labels, Preprocess pp, std::string name, int64_t channels,
                int64_t height, int64_t width)
      : images_(std::move(images)), labels_(std::move(labels)), pp_(pp), name_(std::move(name)),
        channels_(channels), height_(height), width_(width) {}
  int64_t size() const override { return images_.size(0); }
  bool has_labels() const override { return true; }
  Batch get(int64_t b, int64_t e) const override {
    at::Tensor x = images_.slice(0, b, e).unsqueeze(1);
    if (height_ != 28 || width_ != 28)  // resize the pixels, then preprocess (as image pipelines do)
      x = at::upsample_bilinear2d(x.to(at::kFloat), {height_, width_}, false).round().clamp(0, 255);
    if (channels_ != 1) x = x.expand({-1, channels_, -1, -1});
    return {{pp_.apply(x, name_).contiguous()}, labels_.slice(0, b, e)};
  }
  std::string describe() const override {
    return name_ + " (" + std::to_string(size()) + " samples)";
  }

 private:
  at::Tensor images_, labels_;
  Preprocess pp_;
  std::string name_;
  int64_t channels_, height_, width_;
};

struct FmnistSplit {
  at::Tensor images, labels;
};

const FmnistSplit& load_fmnist_split(const std::string& split) {
  static std::mutex mu;
  static std::map<std::string, FmnistSplit> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(split);
  if (it != cache.end()) return it->second;
  const std::string prefix = fmnist_dir() + "/" + (split == "train" ? "train" : "t10k");
  FmnistSplit s;
  s.images = load_idx_u8(prefix + "-images-idx3-ubyte.gz");
  s.labels = load_idx_u8(prefix + "-labels-idx1-ubyte.gz").to(at::kLong);
  MIXQ_CHECK(s.images.dim() == 3 && s.images.size(1) == 28 && s.images.size(2) == 28,
             ErrorKind::kInvalidData, prefix, "-images: expected N x 28 x 28 images");
  MIXQ_CHECK(s.labels.dim() == 1 && s.labels.size(0) == s.images.size(0), ErrorKind::kInvalidData,
             prefix, "-labels: count does not match the images");
  return cache[split] = s;
}

int64_t parse_count(const std::string& text, const std::string& spec) {
  try {
    size_t used = 0;
    long long n = std::stoll(text, &used);
    if (used == text.size() && n > 0) return n;
  } catch (const std::exception&) {
  }
  throw Error(ErrorKind::kInvalidArgument,
              "dataset '" + spec + "': ':" + text + "' must be a positive sample count");
}

// Checks one input array against the model's declared input.
void check_against(const at::Tensor& t, const ValueInfo& vi, const std::string& what) {
  std::ostringstream got;
  got << dtype_name(dtype_of(t.scalar_type())) << t.sizes();
  MIXQ_CHECK(t.dim() >= 1 && t.size(0) > 0, ErrorKind::kInvalidData, what,
             " is empty: it needs at least one sample along the first (batch) dimension, got ",
             got.str());
  if (vi.dtype != DType::kUndefined) {
    at::ScalarType want = scalar_type_for(vi.dtype, what);
    MIXQ_CHECK(t.scalar_type() == want, ErrorKind::kInvalidData, what, " holds ", got.str(),
               " but model input '", vi.name, "' is ", vi.str(),
               " (convert it, e.g. x.astype(np.float32))");
  }
  if (vi.has_shape) {
    bool ok = static_cast<size_t>(t.dim()) == vi.dims.size();
    for (size_t d = 1; ok && d < vi.dims.size(); ++d)
      ok = vi.dims[d] < 0 || vi.dims[d] == t.size(static_cast<int64_t>(d));
    MIXQ_CHECK(ok, ErrorKind::kInvalidData, what, " holds ", got.str(), " but model input '",
               vi.name, "' is ", vi.str(), " (samples must be stacked along the first dimension)");
  }
}

// Picks the arrays for the model inputs (and labels) out of a name -> array map.
std::unique_ptr<Dataset> from_named(std::map<std::string, at::Tensor> arrays,
                                    const std::vector<ValueInfo>& model_inputs, const std::string& spec,
                                    const Preprocess* pp) {
  MIXQ_CHECK(!arrays.empty(), ErrorKind::kInvalidData, spec, ": holds no arrays");
  std::vector<at::Tensor> inputs;
  for (const auto& vi : model_inputs) {
    auto it = arrays.find(vi.name);
    if (it == arrays.end() && model_inputs.size() == 1)
      for (const char* alias : {"x", "input", "inputs", "data", "arr_0"})
        if ((it = arrays.find(alias)) != arrays.end()) break;
    if (it == arrays.end()) {
      std::ostringstream names;
      for (const auto& kv : arrays) names << " " << kv.first;
      throw Error(ErrorKind::kInvalidData, spec + ": no array for model input '" + vi.name +
                                               "' (arrays present:" + names.str() +
                                               "); name it after the input" +
                                               (model_inputs.size() == 1 ? " or 'x'" : ""));
    }
    at::Tensor t = it->second;
    if (pp && t.scalar_type() == at::kByte && (vi.dtype == DType::kFloat || vi.dtype == DType::kUndefined))
      t = pp->apply(t, spec + ":" + it->first);  // raw uint8 images: preprocess like fmnist
    check_against(t, vi, spec + ":" + it->first);
    inputs.push_back(t);
  }
  at::Tensor labels;
  for (const char* key : {"labels", "label", "y", "arr_1"}) {
    auto it = arrays.find(key);
    if (it == arrays.end()) continue;
    MIXQ_CHECK(!at::isFloatingType(it->second.scalar_type()) && it->second.dim() == 1,
               ErrorKind::kInvalidData, spec, ":", key, " must be a 1-D integer array of class ids");
    labels = it->second.to(at::kLong);
    break;
  }
  const int64_t n = inputs.front().size(0);
  for (size_t i = 1; i < inputs.size(); ++i)
    MIXQ_CHECK(inputs[i].size(0) == n, ErrorKind::kInvalidData, spec, ": inputs hold ", n, " and ",
               inputs[i].size(0), " samples");
  MIXQ_CHECK(!labels.defined() || labels.size(0) == n, ErrorKind::kInvalidData, spec, ": ",
             labels.defined() ? labels.size(0) : 0, " labels for ", n, " samples");
  return std::make_unique<TensorDataset>(std::move(inputs), labels, spec);
}

class HeadDataset final : public Dataset {
 public:
  HeadDataset(const Dataset& base, int64_t n) : base_(base), n_(std::min(n, base.size())) {}
  int64_t size() const override { return n_; }
  bool has_labels() const override { return base_.has_labels(); }
  Batch get(int64_t b, int64_t e) const override { return base_.get(b, e); }
  std::string describe() const override { return "first " + std::to_string(n_) + " of " + base_.describe(); }

 private:
  const Dataset& base_;
  int64_t n_;
};

}  // namespace

std::unique_ptr<Dataset> head_dataset(const Dataset& base, int64_t n) {
  return std::make_unique<HeadDataset>(base, n <= 0 ? base.size() : n);
}

namespace {
std::mutex g_memory_mu;
std::map<std::string, std::map<std::string, at::Tensor>>& memory_arrays() {
  static std::map<std::string, std::map<std::string, at::Tensor>> m;
  return m;
}
}  // namespace

void register_memory_arrays(const std::string& name, std::map<std::string, at::Tensor> arrays) {
  std::lock_guard<std::mutex> lock(g_memory_mu);
  memory_arrays()[name] = std::move(arrays);
}

void unregister_memory_arrays(const std::string& name) {
  std::lock_guard<std::mutex> lock(g_memory_mu);
  memory_arrays().erase(name);
}

std::unique_ptr<Dataset> memory_dataset(std::vector<at::Tensor> inputs, at::Tensor labels, std::string name) {
  return std::make_unique<TensorDataset>(std::move(inputs), std::move(labels), std::move(name));
}

std::unique_ptr<Dataset> open_dataset(const std::string& spec, const std::vector<ValueInfo>& model_inputs,
                                      const Preprocess& pp) {
  MIXQ_CHECK(!spec.empty(), ErrorKind::kInvalidArgument, "empty dataset spec (try fmnist:test)");
  if (spec.rfind("fmnist:", 0) == 0) {
    std::string rest = spec.substr(7);
    std::string split = rest.substr(0, rest.find(':'));
    MIXQ_CHECK(split == "train" || split == "test", ErrorKind::kInvalidArgument, "dataset '", spec,
               "': the split must be 'train' or 'test'");
    int64_t limit = -1;
    if (rest.find(':') != std::string::npos) limit = parse_count(rest.substr(rest.find(':') + 1), spec);
    MIXQ_CHECK(model_inputs.size() == 1, ErrorKind::kInvalidData, "dataset '", spec,
               "' provides one image input, but the model has ", model_inputs.size(), " inputs");
    const FmnistSplit& s = load_fmnist_split(split);
    int64_t n = limit < 0 ? s.images.size(0) : std::min<int64_t>(limit, s.images.size(0));
    const ValueInfo& vi = model_inputs[0];
    bool ok = !vi.has_shape || (vi.dims.size() == 4 && (vi.dims[1] < 0 || vi.dims[1] == 1 || vi.dims[1] == 3));
    MIXQ_CHECK(ok, ErrorKind::kInvalidData, "dataset '", spec, "' yields [N,C,H,W] images (C = 1 or 3) but model input '",
               vi.name, "' is ", vi.str(), " (feed an .npz/.npy of your own inputs instead)");
    auto dim = [&](size_t d, int64_t dflt) { return vi.has_shape && vi.dims[d] > 0 ? vi.dims[d] : dflt; };
    auto ds = std::make_unique<FmnistDataset>(s.images.slice(0, 0, n), s.labels.slice(0, 0, n), pp, spec,
                                              dim(1, 1), dim(2, 28), dim(3, 28));
    MIXQ_CHECK(vi.dtype == DType::kFloat || vi.dtype == DType::kUndefined, ErrorKind::kInvalidData,
               "dataset '", spec, "' yields float images but model input '", vi.name, "' is ", vi.str());
    return ds;
  }
  if (spec.rfind("mem:", 0) == 0) {
    std::map<std::string, at::Tensor> arrays;
    {
      std::lock_guard<std::mutex> lock(g_memory_mu);
      auto it = memory_arrays().find(spec.substr(4));
      MIXQ_CHECK(it != memory_arrays().end(), ErrorKind::kInvalidArgument, "dataset '", spec,
                 "': no arrays registered under that name in this process");
      arrays = it->second;
    }
    return from_named(std::move(arrays), model_inputs, spec, &pp);
  }
  std::error_code ec;
  MIXQ_CHECK(fs::exists(spec, ec), ErrorKind::kIO, "dataset '", spec,
             "' does not exist (expected fmnist:train|test[:N], an .npz/.npy/.pb file or a directory)");
  fs::path p(spec);
  if (fs::is_directory(p)) {
    std::map<std::string, at::Tensor> arrays;
    if (fs::exists(p / "input_0.pb")) {  // ONNX test-data layout
      std::vector<at::Tensor> inputs;
      for (size_t i = 0; i < model_inputs.size(); ++i) {
        fs::path f = p / ("input_" + std::to_string(i) + ".pb");
        MIXQ_CHECK(fs::exists(f), ErrorKind::kInvalidData, spec, ": missing ", f.filename().string(),
                   " for model input '", model_inputs[i].name, "'");
        inputs.push_back(load_tensor_pb(f.string()));
        check_against(inputs.back(), model_inputs[i], f.string());
      }
      return std::make_unique<TensorDataset>(std::move(inputs), at::Tensor(), spec);
    }
    for (const auto& e : fs::directory_iterator(p))
      if (e.path().extension() == ".npy") arrays[e.path().stem().string()] = load_npy(e.path().string());
    MIXQ_CHECK(!arrays.empty(), ErrorKind::kInvalidData, "dataset directory '", spec,
               "' holds no .npy files (nor ONNX input_<i>.pb files)");
    return from_named(std::move(arrays), model_inputs, spec, &pp);
  }
  const std::string ext = p.extension().string();
  if (ext == ".npz") return from_named(load_npz(spec), model_inputs, spec, &pp);
  if (ext == ".npy") return from_named({{"x", load_npy(spec)}}, model_inputs, spec, &pp);
  if (ext == ".pb") {
    MIXQ_CHECK(model_inputs.size() == 1, ErrorKind::kInvalidData, spec,
               ": one .pb file feeds a single-input model; use a directory of input_<i>.pb files");
    at::Tensor t = load_tensor_pb(spec);
    check_against(t, model_inputs[0], spec);
    return std::make_unique<TensorDataset>(std::vector<at::Tensor>{t}, at::Tensor(), spec);
  }
  throw Error(ErrorKind::kInvalidArgument, "dataset '" + spec + "': unknown kind (expected " +
                                               "fmnist:train|test[:N], .npz, .npy, .pb or a directory)");
}

}  // namespace mixq
