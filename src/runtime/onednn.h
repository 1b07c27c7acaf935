// The runtime's float convolutions and float GEMMs on oneDNN (libdnnl-dev): the path for layers the
// plan leaves in float (and the whole model in the fp32 configuration). oneDNN's JIT convolutions use FMA and
// blocked weights prepared once per shape, which our own im2col + sgemm float path (bit-identical
// to the scalar reference, no FMA) cannot match: on resnet18-224 it was 4.7x ONNX Runtime's fp32.
// The reference path stays (ModelOptions::dnnl = false, or MIXQ_RT_DNNL=0, or the unfused
// reference mode); tests compare the two within float tolerance.
//
// What runs: conv + bias, then the fused Relu/Clip, then the fused residual Add (oneDNN's `sum`
// post-op: the caller puts the Add's other operand in the output buffer first), then the Relu/Clip
// after the Add. Source and destination in NCHW or channels-last (NHWC) floats, as the forms planner
// chose (runtime/forms.h). One primitive per (batch, input size, layouts), made on first use;
// weights reordered once per weight format the primitive asks for.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/epilogue.h"

namespace mixq::rt {

struct ConvGeom {
  int64_t O = 0, Ig = 0, G = 1, kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1;
  int64_t pt = 0, pl = 0, pb = 0, pr = 0;
};

// C[m][n] = sum_k A[m][k] * B[k][n] (row-major, leading dimensions; transposed operands when
// trans_a / trans_b: A stored [k][m], B stored [n][k]) with oneDNN's JIT sgemm on `threads` OpenMP
// threads. The float GEMMs of Gemm / MatMul take it instead of kernels::sgemm (the reference loop)
// when the model runs the fast forms (BuildCtx::dnnl).
void sgemm_onednn(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* A, int64_t lda,
                  const float* B, int64_t ldb, float* C, int64_t ldc, int threads);

// y[m][n] = act(sum_k x[m][k] * W[n][k] + bias[n]) on oneDNN's inner product with the weight
// reordered once into the blocked form its kernel reads (a plain sgemm repacks the weight on every
// call: a fifth of the time of a 784 -> 256 layer at batch 32). One primitive per row count m, made
// on first use. Used by the runtime's float Gemm / MatMul layers and the executor's fused Gemm.
class DnnlLinear {
 public:
  // w: n x k, stored [n][k] (k_major = false) or [k][n] (k_major = true); bias: n values or empty.
  // `act`: a Relu/Clip applied in the same pass (nullptr: none). `borrow`: `w` stays alive and
  // unchanged while this object lives (the executor's weights are tensors it holds anyway), so a
  // format equal to the caller's layout runs on `w` itself and no copy of it is kept; otherwise
  // the weights are copied, and that copy is released once the first packed format exists.
  DnnlLinear(const float* w, int64_t n, int64_t k, bool k_major, const float* bias,
             const kernels::ActClamp* act = nullptr, bool borrow = false);
  ~DnnlLinear();
  DnnlLinear(const DnnlLinear&) = delete;
  DnnlLinear& operator=(const DnnlLinear&) = delete;
  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  // x: [m][k]; y: [m][n]; `threads`: OpenMP threads for oneDNN.
  void run(const float* x, int64_t m, float* y, int threads);

 private:
  struct Impl;
  int64_t n_, k_;
  std::unique_ptr<Impl> impl_;
};

class DnnlConv {
 public:
  // w: [O][Ig][kh][kw] float (dequantized when the layer's weight is quantized); bias: [O].
  DnnlConv(const ConvGeom& g, std::vector<float> w, std::vector<float> bias);
  // The same with borrowed weights: `w` must stay alive and unchanged while this object lives
  // (the executor's conv weights are tensors it holds anyway: no second float copy of them).
  DnnlConv(const ConvGeom& g, const float* w, std::vector<float> bias);
  ~DnnlConv();
  DnnlConv(const DnnlConv&) = delete;
  DnnlConv& operator=(const DnnlConv&) = delete;

  // Post-ops, in the order they apply (set at load, before the first run).
  void set_act(const kernels::ActClamp& a) { act_ = a; has_act_ = true; }
  void set_sum(bool on) { sum_ = on; }
  void set_post(const kernels::ActClamp& a) { post_ = a; has_post_ = true; }

  // x: [N][Ig*G][H][W] (memory channels-last when x_nhwc); y: [N][O][OH][OW] in y's layout, already
  // holding the residual operand when the sum post-op is on. `threads`: OpenMP threads for oneDNN.
  void run(const float* x, bool x_nhwc, int64_t N, int64_t H, int64_t W, float* y, bool y_nhwc, int threads);

  // Whether oneDNN can run on this machine (an engine could be made): checked once per process.
  static bool available();

 private:
  struct Impl;
  ConvGeom g_;
  std::vector<float> w_, bias_;
  const float* wp_;  // w_.data() or the borrowed weights
  kernels::ActClamp act_, post_;
  bool has_act_ = false, has_post_ = false, sum_ = false;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mixq::rt
