// A float 2-D convolution made once per weight for oneDNN (rt::DnnlConv: weights reordered once
// into the blocked form its JIT kernel reads, primitives cached per input size and layout), for the
// executor's inference runs. libtorch 1.13's at::convolution reaches the same oneDNN but reorders
// the weight, and for depthwise layers the activations, on every call: on a 224x224 MobileNetV2
// (batch 64, 2 threads, AVX2) the packed runtime's float path on DnnlConv ran 2.4x the executor's
// images/s with the same oneDNN underneath. Under autograd the executor keeps at::convolution.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <mutex>
#include <vector>

#include "runtime/onednn.h"

namespace mixq {

class DnnlConvCache {
 public:
  // Runs y = act(conv(x, w) + bias) on oneDNN, y channels-last; returns an undefined tensor where
  // oneDNN cannot take it (not float32 / not 4-D / not CPU / no oneDNN / a primitive it refused),
  // and the caller takes libtorch's path. `geom` has everything but O, Ig and the kernel size,
  // which come from w. The cache key is the weight's and bias's identity (plus their version
  // counters where they have one: a reconstruction edits weights in place between runs); an
  // inference tensor (no version counter) is taken as unchanged while it is the same tensor,
  // which the executor's hook contract guarantees (hooks replace values, never edit them).
  at::Tensor run(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias, const rt::ConvGeom& geom,
                 const kernels::ActClamp* act);

  // Convolutions run on this path in this process so far (diagnostics and tests).
  static int64_t total_runs();

 private:
  bool stale(const at::Tensor& w, const at::Tensor& bias, const kernels::ActClamp* act) const;

  std::mutex mu_;  // one run at a time (the primitive list grows on first use of a shape)
  std::unique_ptr<rt::DnnlConv> conv_;
  at::Tensor w_src_, b_src_;
  at::Tensor w_plain_;  // the OIHW-ordered weights conv_ reads (borrowed: w_src_ itself when contiguous)
  uint32_t w_version_ = 0, b_version_ = 0;
  bool has_act_ = false;
  kernels::ActClamp act_;
  bool refused_ = false;  // oneDNN refused this convolution once: libtorch from then on
};

}  // namespace mixq
