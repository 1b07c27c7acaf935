// How a calibration set is drawn from its dataset spec: its first samples (the default, as every
// result so far was made), or a seeded random subset. BRECQ's reference code draws its 1,024
// calibration images at random from the training set; mixq took the first ones, one of the
// differences issue 23 separates.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace mixq {

struct CalibSampling {
  bool random = false;
  uint64_t seed = 0;
  // What names this draw in cache keys: `spec` itself for the first samples, spec + "#random:SEED".
  std::string key(const std::string& spec) const;
};

// "first" | "random" (kInvalidArgument otherwise).
bool parse_calib_sampling(const std::string& s);

// Opens `spec` as open_dataset does; with random sampling, "fmnist:SPLIT:N" becomes N samples drawn
// without replacement from the whole split, and any other spec all of its samples in a seeded
// random order. The draw depends only on the seed and the dataset's size.
std::unique_ptr<Dataset> open_calibration(const std::string& spec, const std::vector<ValueInfo>& model_inputs,
                                          const Preprocess& pp, const CalibSampling& s);

// `n` of `base`'s samples drawn without replacement by mt19937_64(seed) (a partial Fisher-Yates
// shuffle), in the order drawn. n <= 0 or n > size: all of them.
std::unique_ptr<Dataset> random_subset(std::unique_ptr<Dataset> base, int64_t n, uint64_t seed);

}  // namespace mixq
