// Helpers for tests that run the packed runtime beside libtorch: tensors into the runtime's form,
// and the comparison of a batch of class scores (the runtime vs the simulation).
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "pack/bitpack.h"
#include "pack/mxq_format.h"
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

// A weight of `dims` quantized per channel on `axis` at `bits`, codes random over the full range.
inline pack::QWeight random_qweight(const std::string& node, const std::vector<int64_t>& dims, int64_t axis, int bits,
                             bool sym, std::mt19937& rng) {
  pack::QWeight w;
  w.node = node;
  w.tensor = node + ".w";
  w.dims = dims;
  w.bits = bits;
  w.symmetric = sym;
  w.granularity = pack::Gran::kPerChannel;
  w.axis = axis;
  const int64_t C = dims[axis], n = w.numel();
  std::uniform_real_distribution<float> us(0.01f, 0.1f);
  for (int64_t c = 0; c < C; ++c) {
    w.scales.push_back(us(rng));
    w.zero_points.push_back(sym ? 0 : static_cast<int32_t>(rng() % (1u << bits)));
  }
  std::vector<uint16_t> u(n);
  for (auto& v : u) v = static_cast<uint16_t>(rng() % (1u << bits));
  w.packed.resize(pack::packed_bytes(n, bits));
  pack::pack_bits(u.data(), n, bits, w.packed.data());
  return w;
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
