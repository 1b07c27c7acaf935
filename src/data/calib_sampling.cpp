#include "data/calib_sampling.h"

#include <ATen/ATen.h>

#include <numeric>
#include <random>

#include "mixq/error.h"

namespace mixq {

namespace {

class RandomSubset final : public Dataset {
 public:
  RandomSubset(std::unique_ptr<Dataset> base, std::vector<int64_t> idx, uint64_t seed)
      : base_(std::move(base)), idx_(std::move(idx)), seed_(seed) {}
  int64_t size() const override { return static_cast<int64_t>(idx_.size()); }
  bool has_labels() const override { return base_->has_labels(); }
  Batch get(int64_t b, int64_t e) const override {
    std::vector<std::vector<at::Tensor>> inputs;
    std::vector<at::Tensor> labels;
    for (int64_t i = b; i < e; ++i) {
      Batch one = base_->get(idx_[i], idx_[i] + 1);
      if (inputs.empty()) inputs.resize(one.inputs.size());
      for (size_t k = 0; k < one.inputs.size(); ++k) inputs[k].push_back(one.inputs[k]);
      if (one.labels.defined()) labels.push_back(one.labels);
    }
    Batch out;
    for (auto& parts : inputs) out.inputs.push_back(at::cat(parts, 0));
    if (!labels.empty()) out.labels = at::cat(labels, 0);
    return out;
  }
  std::string describe() const override {
    return "random " + std::to_string(idx_.size()) + " of " + base_->describe() + " (seed " + std::to_string(seed_) + ")";
  }

 private:
  std::unique_ptr<Dataset> base_;
  std::vector<int64_t> idx_;
  uint64_t seed_;
};

}  // namespace

std::string CalibSampling::key(const std::string& spec) const {
  return random ? spec + "#random:" + std::to_string(seed) : spec;
}

bool parse_calib_sampling(const std::string& s) {
  MIXQ_CHECK(s == "first" || s == "random", ErrorKind::kInvalidArgument, "--calib-sample: '", s,
             "' is not 'first' or 'random'");
  return s == "random";
}

std::unique_ptr<Dataset> random_subset(std::unique_ptr<Dataset> base, int64_t n, uint64_t seed) {
  const int64_t total = base->size();
  if (n <= 0 || n > total) n = total;
  std::vector<int64_t> perm(static_cast<size_t>(total));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  std::mt19937_64 rng(seed);
  for (int64_t i = 0; i < n; ++i) {  // partial Fisher-Yates: the first n places are the draw
    const int64_t j = i + static_cast<int64_t>(rng() % static_cast<uint64_t>(total - i));
    std::swap(perm[i], perm[j]);
  }
  perm.resize(static_cast<size_t>(n));
  return std::make_unique<RandomSubset>(std::move(base), std::move(perm), seed);
}

std::unique_ptr<Dataset> open_calibration(const std::string& spec, const std::vector<ValueInfo>& model_inputs,
                                          const Preprocess& pp, const CalibSampling& s) {
  if (!s.random) return open_dataset(spec, model_inputs, pp);
  // fmnist:SPLIT:N -> N drawn from the whole split (the count is how many, not which).
  const size_t last = spec.rfind(':');
  if (spec.rfind("fmnist:", 0) == 0 && last > 7) {
    const int64_t n = open_dataset(spec, model_inputs, pp)->size();  // checks the spec and its count
    return random_subset(open_dataset(spec.substr(0, last), model_inputs, pp), n, s.seed);
  }
  return random_subset(open_dataset(spec, model_inputs, pp), 0, s.seed);
}

}  // namespace mixq
