// Helpers for tests that run the packed runtime beside libtorch: tensors into the runtime's form,
// and the comparison of a batch of class scores (the runtime vs the simulation).
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "runtime/tensor.h"

namespace mixq::test {

// float32, or int64 for every integer / bool tensor (how the runtime holds them).
inline rt::Tensor to_rt(const at::Tensor& t0) {
  const bool f = at::isFloatingType(t0.scalar_type());
  const at::Tensor t = t0.to(f ? at::kFloat : at::kLong).contiguous();
  rt::Tensor x;
  x.shape.assign(t.sizes().begin(), t.sizes().end());
  if (f) {
    x.f.assign(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
  } else {
    x.dtype = pack::ElemType::kInt64;
    x.i.assign(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
  }
  return x;
}

inline std::vector<rt::Tensor> to_rt(const std::vector<at::Tensor>& ts) {
  std::vector<rt::Tensor> out;
  for (const auto& t : ts) out.push_back(to_rt(t));
  return out;
}

// Scores y [N, C] (row-major) against the reference [N, C]: the largest absolute difference, the
// largest reference magnitude and how many rows pick the same class.
struct ScoreAgreement {
  double maxdiff = 0, maxabs = 0;
  int64_t agree = 0;
};
inline ScoreAgreement compare_scores(const at::Tensor& ref0, const std::vector<float>& y) {
  const at::Tensor ref = ref0.to(at::kFloat).contiguous();
  const float* rp = ref.data_ptr<float>();
  const int64_t N = ref.size(0), C = ref.size(1);
  ScoreAgreement s;
  for (int64_t i = 0; i < N; ++i) {
    int64_t ay = 0, ar = 0;
    for (int64_t c = 0; c < C; ++c) {
      s.maxdiff = std::max(s.maxdiff, double(std::fabs(y[i * C + c] - rp[i * C + c])));
      s.maxabs = std::max(s.maxabs, double(std::fabs(rp[i * C + c])));
      if (y[i * C + c] > y[i * C + ay]) ay = c;
      if (rp[i * C + c] > rp[i * C + ar]) ar = c;
    }
    s.agree += ay == ar;
  }
  return s;
}

}  // namespace mixq::test
