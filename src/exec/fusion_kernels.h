// The fused kernels the executor's fusion pass (fusion.cpp) puts in place of matched node groups:
// one class per FusionKind, each with `accepts` (the inputs it can take; else the group runs
// unfused) and `compute`. Internal to fusion.cpp, which alone includes this header.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <optional>

#include "exec/conv_precision.h"
#include "exec/fusion.h"
#include "kernels/isa.h"
#include "runtime/onednn.h"

namespace mixq::fusion_kernels {

inline bool is_float_type(at::ScalarType t) { return t == at::kFloat || t == at::kDouble; }

// ---- fused kernels ---------------------------------------------------------------------------

// A constant float weight (and bias) packed once for oneDNN's inner product, re-made when either
// tensor or its version changes (reconstruction methods edit weights in place between runs).
// get() returns nullptr for inference tensors (a hook's output, a DequantizeLinear's: no version
// counter), non-CPU tensors, or without oneDNN: the caller then takes libtorch's path.
class DnnlLinearCache {
 public:
  // w: [k][n] (k_major, as MatMul's B) or [n][k] (as Gemm's transposed B).
  rt::DnnlLinear* get(const at::Tensor& w, const at::Tensor* bias, bool k_major) {
    if (w.is_inference() || (bias && bias->is_inference()) || !w.device().is_cpu() || !rt::DnnlConv::available())
      return nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    const uint32_t cv = bias ? bias->_version() : 0;
    if (!lin_ || !w.is_same(src_) || w._version() != version_ ||
        (bias && (!bias->is_same(bias_src_) || cv != bias_version_))) {
      const at::Tensor wc = w.contiguous(), bc = bias ? bias->contiguous() : at::Tensor();
      const int64_t n = k_major ? wc.size(1) : wc.size(0), k = k_major ? wc.size(0) : wc.size(1);
      lin_.reset();  // the old primitive may borrow the old weights
      // Borrowed weights: `held_` keeps them alive; an in-place edit bumps w's version, and the
      // check above rebuilds before the next run reads them.
      held_ = wc;
      lin_ = std::make_unique<rt::DnnlLinear>(wc.data_ptr<float>(), n, k, k_major,
                                              bias ? bc.data_ptr<float>() : nullptr, nullptr, /*borrow=*/true);
      src_ = w;
      version_ = w._version();
      if (bias) {
        bias_src_ = *bias;
        bias_version_ = cv;
      }
    }
    return lin_.get();
  }

 private:
  std::mutex mu_;
  std::unique_ptr<rt::DnnlLinear> lin_;
  at::Tensor src_, bias_src_;  // the weight and bias lin_ was made from (identity + version)
  at::Tensor held_;            // the contiguous weight lin_ borrows
  uint32_t version_ = 0, bias_version_ = 0;
};

// in: X, W, b (then ignored extras). Y = X @ W + b. Float inference (no autograd) runs on oneDNN's
// inner product with the weight packed once (a ViT's projections are [tokens, 64..256] x [64..256]
// products where OpenBLAS's addmm spends most of its time packing B); otherwise at::addmm.
class LinearKernel final : public FusedKernel {
 public:
  bool accepts(const std::vector<at::Tensor>& in) const override {
    const at::Tensor &x = in[0], &w = in[1], &b = in[2];
    return x.defined() && w.defined() && b.defined() && is_float_type(x.scalar_type()) &&
           w.scalar_type() == x.scalar_type() && b.scalar_type() == x.scalar_type() &&
           x.dim() >= 2 && w.dim() == 2 && b.dim() == 1 && x.size(-1) == w.size(0) &&
           b.size(0) == w.size(1) && x.device() == w.device() && x.device() == b.device();
  }
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    const at::Tensor &x = in[0], &w = in[1], &b = in[2];
    std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
    shape.back() = w.size(1);
    const bool grad = at::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad() || b.requires_grad());
    if (!grad && x.scalar_type() == at::kFloat) {
      if (rt::DnnlLinear* lin = cache_.get(w, &b, /*k_major=*/true)) {
        const at::Tensor xc = x.contiguous();
        const int64_t m = xc.numel() / xc.size(-1);
        at::Tensor y = at::empty(shape, xc.options());
        lin->run(xc.data_ptr<float>(), m, y.data_ptr<float>(), omp_in_parallel() ? 1 : omp_get_max_threads());
        out[0] = std::move(y);
        return;
      }
    }
    if (x.dim() == 2) {
      out[0] = at::addmm(b, x, w);
      return;
    }
    out[0] = at::addmm(b, x.reshape({-1, x.size(-1)}), w).view(shape);
  }

 private:
  DnnlLinearCache cache_;
};

// in: x. erf GELU. `ctype`: dtype of the chain's constants (the unfused chain computes in it).
class GeluKernel final : public FusedKernel {
 public:
  explicit GeluKernel(at::ScalarType ctype) : ctype_(ctype) {}
  bool accepts(const std::vector<at::Tensor>& in) const override {
    return in[0].defined() && in[0].scalar_type() == ctype_ && is_float_type(ctype_);
  }
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    out[0] = at::gelu(in[0]);
  }

 private:
  at::ScalarType ctype_;
};

// in: X, gamma, beta. Normalizes over `axis`, which must be the last one at run time.
class LayerNormKernel final : public FusedKernel {
 public:
  LayerNormKernel(int64_t axis, double eps, at::ScalarType ctype) : axis_(axis), eps_(eps), ctype_(ctype) {}
  bool accepts(const std::vector<at::Tensor>& in) const override {
    const at::Tensor &x = in[0], &g = in[1], &b = in[2];
    if (!x.defined() || !g.defined() || !b.defined() || x.dim() < 1) return false;
    int64_t ax = axis_ < 0 ? axis_ + x.dim() : axis_;
    return ax == x.dim() - 1 && x.scalar_type() == ctype_ && is_float_type(ctype_) &&
           g.scalar_type() == ctype_ && b.scalar_type() == ctype_ && g.dim() == 1 &&
           b.dim() == 1 && g.size(0) == x.size(-1) && b.size(0) == x.size(-1) &&
           x.device() == g.device() && x.device() == b.device();
  }
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    out[0] = at::layer_norm(in[0], {in[0].size(-1)}, in[1], in[2], eps_, /*cudnn_enable=*/true);
  }

 private:
  int64_t axis_;
  double eps_;
  at::ScalarType ctype_;
};

// An activation applied to a convolution's result in place (one pass over the activations,
// while they are still in cache for small layers, and no second buffer).
struct Activation {
  enum Kind { kNone, kRelu, kClip, kHardSwish, kSilu } kind = kNone;
  c10::optional<double> lo, hi;    // kClip bounds (absent: unbounded)
  double alpha = 0, beta = 0;      // kHardSwish: x * clamp(alpha * x + beta, 0, 1)

  // at::hardswish computes x * clamp(x + 3, 0, 6) / 6: ONNX's HardSigmoid(1/6, 1/2) * x up to
  // float rounding.
  bool exact_hardswish() const { return alpha == static_cast<double>(1.0f / 6.0f) && beta == 0.5; }

  void apply_(at::Tensor& y) const {
    switch (kind) {
      case kNone: break;
      case kRelu: y.relu_(); break;
      case kClip: y.clamp_(lo ? c10::optional<at::Scalar>(*lo) : c10::nullopt,
                           hi ? c10::optional<at::Scalar>(*hi) : c10::nullopt); break;
      case kHardSwish:
        if (exact_hardswish()) at::hardswish_(y);
        else y.mul_(at::mul(y, alpha).add_(beta).clamp_(0, 1));
        break;
      case kSilu: at::silu_(y); break;
    }
  }
  // out[0] = this activation of conv(in): in the convolution's own pass where it can take a Relu or
  // Clip (OpKernel::compute_clamped), else computed and then activated in place.
  void run_after(OpKernel& conv, const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) const {
    if (kind == kRelu && conv.compute_clamped(in, out, 0.f, INFINITY)) return;
    if (kind == kClip && conv.compute_clamped(in, out, lo ? static_cast<float>(*lo) : -INFINITY,
                                              hi ? static_cast<float>(*hi) : INFINITY))
      return;
    conv.compute(in, out);
    apply_(out[0]);
  }
  // Out of place (standalone chains, where the input may be read elsewhere).
  at::Tensor apply(const at::Tensor& x) const {
    if (kind == kHardSwish && exact_hardswish()) return at::hardswish(x);
    if (kind == kSilu) return at::silu(x);
    at::Tensor y = x.clone();
    apply_(y);
    return y;
  }
};

// in: X, W[, B]. `conv` is the Conv node's own kernel; its result gets `act` in place. Inference
// only (an in-place activation on a conv output is not what autograd should record): under grad
// mode the original nodes run.
class ConvActKernel final : public FusedKernel {
 public:
  // n_conv_inputs: 2 or 3 (with bias); inputs after them are a Clip's bounds (baked in).
  ConvActKernel(std::unique_ptr<OpKernel> conv, Activation act, size_t n_conv_inputs)
      : conv_(std::move(conv)), act_(act), n_(n_conv_inputs) {}
  bool accepts(const std::vector<at::Tensor>& in) const override {
    if (at::GradMode::is_enabled() || in.size() < n_) return false;
    const at::Tensor &x = in[0], &w = in[1];
    return x.defined() && w.defined() && is_float_type(x.scalar_type()) && w.scalar_type() == x.scalar_type() &&
           (n_ < 3 || (in[2].defined() && in[2].scalar_type() == x.scalar_type())) && w.dim() >= 3;
  }
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    std::vector<at::Tensor> cin(in.begin(), in.begin() + n_), cout(1);
    act_.run_after(*conv_, cin, cout);
    out[0] = std::move(cout[0]);
  }

 private:
  std::unique_ptr<OpKernel> conv_;
  Activation act_;
  size_t n_;
};

// in: x. A decomposed activation chain (HardSigmoid + Mul: hard-swish; Sigmoid + Mul: SiLU) as one
// libtorch call: one pass instead of two and no intermediate tensor.
class ActKernel final : public FusedKernel {
 public:
  explicit ActKernel(Activation act) : act_(act) {}
  bool accepts(const std::vector<at::Tensor>& in) const override {
    return in[0].defined() && is_float_type(in[0].scalar_type());
  }
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    out[0] = act_.apply(in[0]);
  }

 private:
  Activation act_;
};

// in: X, W, scale, bn_bias, mean, var[, B (the Conv's bias, when it has one)]. `conv` is the Conv
// node's own kernel (its attributes: pads, strides, groups, auto_pad), run on the folded weights.
// Inference only: under autograd (recon training graphs) or with a weight that requires grad the
// original nodes run, so gradients never see the folded copy.
class ConvBnKernel final : public FusedKernel {
 public:
  ConvBnKernel(std::unique_ptr<OpKernel> conv, double eps, Activation act, bool has_bias)
      : conv_(std::move(conv)), eps_(eps), act_(act), has_bias_(has_bias) {}
  bool accepts(const std::vector<at::Tensor>& in) const override {
    if (at::GradMode::is_enabled()) return false;
    const at::Tensor &x = in[0], &w = in[1];
    if (!x.defined() || !w.defined() || !is_float_type(x.scalar_type()) || w.scalar_type() != x.scalar_type() ||
        w.dim() < 3 || w.requires_grad())
      return false;
    if (in.size() < n_inputs()) return false;
    for (size_t i = 2; i < n_inputs(); ++i) {
      const at::Tensor& t = in[i];
      if (!t.defined() || t.scalar_type() != x.scalar_type() || t.dim() != 1 || t.size(0) != w.size(0) ||
          t.requires_grad() || t.device() != w.device())
        return false;
    }
    return true;
  }
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!cached(in)) fold(in);
    }
    std::vector<at::Tensor> cin = {in[0], wf_, bf_}, cout(1);
    act_.run_after(*conv_, cin, cout);
    out[0] = std::move(cout[0]);
  }

 private:
  // X, W, the four BN tensors and the Conv bias when it has one (then a Clip's bounds, ignored).
  size_t n_inputs() const { return has_bias_ ? 7 : 6; }
  bool cached(const std::vector<at::Tensor>& in) const {
    if (src_.size() + 1 != n_inputs()) return false;
    for (size_t i = 0; i < src_.size(); ++i) {
      const at::Tensor& t = in[i + 1];
      // Inference tensors (made under InferenceMode, e.g. by a hook) have no version counter,
      // so an in-place change would go unseen: they are refolded on every call.
      if (t.is_inference() || !t.is_same(src_[i]) || t._version() != version_[i]) return false;
    }
    return true;
  }
  void fold(const std::vector<at::Tensor>& in) {
    const at::Tensor &w = in[1], &scale = in[2], &beta = in[3], &mean = in[4], &var = in[5];
    at::Tensor f = scale / at::sqrt(var + eps_);
    std::vector<int64_t> shape(static_cast<size_t>(w.dim()), 1);
    shape[0] = w.size(0);
    wf_ = (w * f.reshape(shape)).contiguous();
    bf_ = ((has_bias_ ? in[6] : at::zeros_like(mean)) - mean) * f + beta;
    src_.assign(in.begin() + 1, in.begin() + n_inputs());
    version_.clear();
    for (const auto& t : src_) version_.push_back(t.is_inference() ? 0 : t._version());
  }

  std::unique_ptr<OpKernel> conv_;
  double eps_;
  Activation act_;
  bool has_bias_;
  std::mutex mu_;
  std::vector<at::Tensor> src_;  // the weight tensors wf_/bf_ were folded from (identity + version)
  std::vector<uint32_t> version_;
  at::Tensor wf_, bf_;
};

// in: X, scale, zero point[, lo, hi (a Clip's bounds)]. [Clip ->] QuantizeLinear ->
// DequantizeLinear with one scale and zero point (an activation's fake quantization, quant/qdq.cpp)
// in one pass over X with no 8-bit intermediate: y = (clamp(round_half_even(x / s) + z, qmin,
// qmax) - z) * s. Every step is the float32 operation the nodes do (a true division, exact
// integer additions, one rounded product), so the bits are theirs; the unfused chain makes five
// passes and three buffers. Rounding is (v + 1.5 * 2^23) - 1.5 * 2^23, exactly round-half-even for
// |v| < 2^22 and vectorizable without SSE4.1; |v| is first limited to 2^22, which changes no result
// because the 8-bit clamp saturates far below it. (NaN inputs are outside this: the nodes' code for
// NaN depends on how the platform converts it to 8 bits; here it stays NaN.)
class QdqKernel final : public FusedKernel {
 public:
  explicit QdqKernel(bool clip) : clip_(clip) {}
  // The scale, zero point and Clip bounds (in[1..]) are ones the fused math covers.
  bool accepts_params(const std::vector<at::Tensor>& in, size_t at) const {
    const at::Tensor &s = in[at], &z = in[at + 1];
    if (!s.defined() || !z.defined() || s.scalar_type() != at::kFloat || s.numel() != 1 ||
        (z.scalar_type() != at::kByte && z.scalar_type() != at::kChar) || z.numel() != 1)
      return false;
    if (clip_)
      for (size_t i : {at + 2, at + 3})
        if (i >= in.size() || !in[i].defined() || in[i].scalar_type() != at::kFloat || in[i].numel() != 1) return false;
    return true;
  }
  static bool accepts_data(const at::Tensor& x) {
    return x.defined() && x.scalar_type() == at::kFloat && !x.requires_grad() && x.is_non_overlapping_and_dense() &&
           x.device().is_cpu();
  }
  bool accepts(const std::vector<at::Tensor>& in) const override { return accepts_data(in[0]) && accepts_params(in, 1); }
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    at::Tensor y = at::empty_like(in[0]);  // x is dense: the same strides (channels-last stays)
    apply(in[0], y, in, 1);
    out[0] = std::move(y);
  }
  // y = QDQ(x) with the parameters at in[at..]; y may be x (in place) or a tensor of x's strides.
  void apply(const at::Tensor& x, at::Tensor& y, const std::vector<at::Tensor>& in, size_t at) const {
    const float s = in[at].item<float>();
    const bool u8 = in[at + 1].scalar_type() == at::kByte;
    const float z = static_cast<float>(in[at + 1].item<int64_t>());
    const float qmin = u8 ? 0.0f : -128.0f, qmax = u8 ? 255.0f : 127.0f;
    const float inf = std::numeric_limits<float>::infinity();
    const float lo = clip_ ? in[at + 2].item<float>() : -inf, hi = clip_ ? in[at + 3].item<float>() : inf;
    const float* src = x.data_ptr<float>();
    float* dst = y.data_ptr<float>();
    at::parallel_for(0, x.numel(), 32768, [&](int64_t b, int64_t e) {
      if (src == dst) qdq_loop_inplace(dst + b, e - b, s, z, qmin, qmax, lo, hi);
      else qdq_loop(src + b, dst + b, e - b, s, z, qmin, qmax, lo, hi);
    });
  }

 private:
  // Plain arguments and restrict pointers, so the compiler vectorizes the loops (a lambda reading
  // its captures through references may alias dst). no-trapping-math affects only FP exception
  // flags (nothing reads them); without it GCC keeps the selects as branches. The element
  // function carries the same options, or GCC would not inline it.
#if defined(__GNUC__) && !defined(__clang__)
#define MIXQ_VECTORIZE_SELECTS __attribute__((optimize("no-trapping-math")))
#else
#define MIXQ_VECTORIZE_SELECTS
#endif
  // The loops are also built for AVX2 and AVX-512 and picked at load time by CPU (GCC's
  // target_clones): a true division per element, 2-4x the SSE width.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define MIXQ_QDQ_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MIXQ_QDQ_CLONES
#endif
  // One element; selects on values (std::min/max pick references), so the loops vectorize.
  MIXQ_VECTORIZE_SELECTS static inline float qdq_one(float x, float s, float z, float qmin, float qmax, float lo,
                                                     float hi) {
    constexpr float kMagic = 12582912.0f, kLim = 4194304.0f;  // 1.5 * 2^23, 2^22
    float v = x < lo ? lo : x;  // the Clip (+-inf without one)
    v = v > hi ? hi : v;
    v = v / s;
    v = v < -kLim ? -kLim : v;
    v = v > kLim ? kLim : v;
    float q = (v + kMagic) - kMagic + z;
    q = q < qmin ? qmin : q;
    q = q > qmax ? qmax : q;
    return (q - z) * s;
  }
  MIXQ_QDQ_CLONES MIXQ_VECTORIZE_SELECTS static void qdq_loop(const float* __restrict src, float* __restrict dst, int64_t n, float s,
                                               float z, float qmin, float qmax, float lo, float hi) {
    for (int64_t i = 0; i < n; ++i) dst[i] = qdq_one(src[i], s, z, qmin, qmax, lo, hi);
  }
  MIXQ_QDQ_CLONES MIXQ_VECTORIZE_SELECTS static void qdq_loop_inplace(float* __restrict p, int64_t n, float s, float z, float qmin,
                                                       float qmax, float lo, float hi) {
    for (int64_t i = 0; i < n; ++i) p[i] = qdq_one(p[i], s, z, qmin, qmax, lo, hi);
  }
#undef MIXQ_VECTORIZE_SELECTS
#undef MIXQ_QDQ_CLONES
  bool clip_;
};

// in: the producer's inputs (a convolution group's X, W[, B] ..., or a Mul's / Add's a, b), then
// the QDQ's scale, zero point[, Clip bounds]. A value that only a QuantDequant reads (an
// activation's fake quantization in a QDQ graph), made by a Conv [-> activation] or an
// elementwise Mul/Add: the QDQ runs in place on the producer's fresh buffer instead of writing a
// second one (on 224x224 models these are tens of MB per batch). In place only when the result
// owns its storage alone; otherwise into a new buffer (the same bits either way).
class ProducerQdqKernel final : public FusedKernel {
 public:
  // `fused`: the producer is a fusion group's kernel (its accepts() decides); else a node's own
  // kernel, accepted on float inputs (whose result is float).
  ProducerQdqKernel(std::unique_ptr<OpKernel> producer, bool fused, size_t n_inputs, std::unique_ptr<QdqKernel> qdq)
      : producer_(std::move(producer)), fused_(fused), n_(n_inputs), qdq_(std::move(qdq)) {}
  bool accepts(const std::vector<at::Tensor>& in) const override {
    if (at::GradMode::is_enabled() || !qdq_->accepts_params(in, n_)) return false;
    std::vector<at::Tensor> pin(in.begin(), in.begin() + n_);
    if (fused_) return in[0].defined() && in[0].scalar_type() == at::kFloat && static_cast<FusedKernel&>(*producer_).accepts(pin);
    return std::all_of(pin.begin(), pin.end(), [](const at::Tensor& t) { return t.defined() && t.scalar_type() == at::kFloat; });
  }
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    std::vector<at::Tensor> pin(in.begin(), in.begin() + n_), pout(1);
    producer_->compute(pin, pout);
    at::Tensor y = std::move(pout[0]);
    MIXQ_ASSERT(y.defined() && y.scalar_type() == at::kFloat, "the producer of a QuantDequant gave ",
                y.defined() ? c10::toString(y.scalar_type()) : "nothing", " from float inputs");
    const bool alone = y.use_count() == 1 && y.storage().use_count() == 1;
    if (QdqKernel::accepts_data(y) && alone) {
      qdq_->apply(y, y, in, n_);
      out[0] = std::move(y);
      return;
    }
    at::Tensor x = QdqKernel::accepts_data(y) ? y : y.contiguous();
    at::Tensor r = at::empty_like(x);
    qdq_->apply(x, r, in, n_);
    out[0] = std::move(r);
  }

 private:
  std::unique_ptr<OpKernel> producer_;
  bool fused_;
  size_t n_;
  std::unique_ptr<QdqKernel> qdq_;
};

// in: A [M, K], B ([K, N], or [N, K] with transB), C [N] or absent. act(A @ op(B) + C) for the
// float Gemm of a fully connected layer (alpha = beta = 1, transA = 0), then the activation in
// place on the result's own buffer. Why this beats the unfused Gemm (fmnist-mlp, batch 32):
// - the weight is packed once for oneDNN's inner product (runtime/onednn.h; refreshed when the
//   weight or bias tensor or its version changes, as ConvBnKernel does): OpenBLAS repacks B on
//   every call, and packs a transposed view ~25% slower still (layer 784 -> 256: 163 vs 125 us);
// - GEMMs under serial_macs() multiply-adds run on the calling thread only: for them the fork/join
//   over OpenMP threads costs more than the second thread gains, and far more when the other core
//   is busy (AVX-512 VNNI Xeon: 784 -> 256 at batch 32: 125 us on 1 thread, 157-160 us on 2). On a
//   CPU without AVX-512 the same layer is ~2.5x the work per core, and two threads win: Zen 3
//   (AVX2), fmnist-mlp batch 32: 165-168k img/s serial, 188-283k with that layer on both cores.
class GemmActKernel final : public FusedKernel {
 public:
  static int64_t serial_macs() {
    static const int64_t v = kernels::detect_isa() == kernels::Isa::kAvx512 ? int64_t{1} << 24 : int64_t{1} << 21;
    return v;
  }

  // flatten_axis >= 0: A is the input of a Flatten(axis) (its only reader is the Gemm), viewed as
  // [prod(dims before axis), prod(dims from axis)] here instead of by a Flatten node.
  GemmActKernel(bool trans_b, bool has_c, Activation act, int64_t flatten_axis)
      : trans_b_(trans_b), has_c_(has_c), act_(act), flatten_axis_(flatten_axis) {}
  bool accepts(const std::vector<at::Tensor>& in) const override {
    const at::Tensor &a = in[0], &b = in[1];
    if (!a.defined() || !b.defined() || a.scalar_type() != at::kFloat || b.scalar_type() != at::kFloat ||
        b.dim() != 2 || a.device() != b.device() || a.requires_grad() || b.requires_grad())
      return false;
    if (flatten_axis_ < 0 ? a.dim() != 2 : flatten_axis_ > a.dim()) return false;
    const int64_t k = trans_b_ ? b.size(1) : b.size(0), n = trans_b_ ? b.size(0) : b.size(1);
    if (rows_cols(a).second != k) return false;
    if (!has_c_) return true;
    const at::Tensor& c = in[2];
    return c.defined() && c.scalar_type() == at::kFloat && c.dim() == 1 && c.size(0) == n &&
           c.device() == a.device() && !c.requires_grad();
  }
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    at::Tensor a = in[0];
    if (flatten_axis_ >= 0) {
      auto rc = rows_cols(a);
      a = a.reshape({rc.first, rc.second});  // a view when contiguous, as Flatten's reshape
    }
    const at::Tensor& b = in[1];
    const int64_t n = trans_b_ ? b.size(0) : b.size(1);
    const int64_t macs = a.size(0) * a.size(1) * n;
    const int threads = omp_get_max_threads();
    const bool serial = threads > 1 && macs < serial_macs() && !omp_in_parallel();
    at::Tensor y;
    if (rt::DnnlLinear* lin = cache_.get(b, has_c_ ? &in[2] : nullptr, /*k_major=*/!trans_b_)) {
      const at::Tensor x = a.is_contiguous() ? a : a.contiguous();
      y = at::empty({x.size(0), n}, x.options());
      lin->run(x.data_ptr<float>(), x.size(0), y.data_ptr<float>(), serial ? 1 : threads);
    } else {  // weights without a version counter: OpenBLAS on the (transposed) view
      const at::Tensor bb = trans_b_ ? b.t() : b;
      if (serial) omp_set_num_threads(1);  // this thread's ICV only; OpenBLAS reads it per call
      try {
        y = has_c_ ? at::addmm(in[2], a, bb) : at::mm(a, bb);
      } catch (...) {
        if (serial) omp_set_num_threads(threads);
        throw;
      }
      if (serial) omp_set_num_threads(threads);
    }
    act_.apply_(y);
    out[0] = std::move(y);
  }

 private:
  std::pair<int64_t, int64_t> rows_cols(const at::Tensor& a) const {
    if (flatten_axis_ < 0) return {a.size(0), a.size(1)};
    int64_t rows = 1, cols = 1;
    for (int64_t d = 0; d < a.dim(); ++d) (d < flatten_axis_ ? rows : cols) *= a.size(d);
    return {rows, cols};
  }

  bool trans_b_, has_c_;
  Activation act_;
  int64_t flatten_axis_;
  DnnlLinearCache cache_;
};

// in: a, b. relu(a + b) with the sum's own buffer reused for the ReLU.
class AddReluKernel final : public FusedKernel {
 public:
  bool accepts(const std::vector<at::Tensor>& in) const override {
    return in[0].defined() && in[1].defined() && is_float_type(in[0].scalar_type()) &&
           in[1].scalar_type() == in[0].scalar_type() && in[0].device() == in[1].device();
  }
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    out[0] = at::add(in[0], in[1]).relu_();
  }
};

// in: table [V, D], idx [N, L]. out [N, D] (or [N, 1, D] with keepdims) = sum_l table[idx[n, l]].
class EmbedSumKernel final : public FusedKernel {
 public:
  explicit EmbedSumKernel(bool keepdims) : keepdims_(keepdims) {}
  bool accepts(const std::vector<at::Tensor>& in) const override {
    const at::Tensor &w = in[0], &idx = in[1];
    if (!w.defined() || !idx.defined() || !is_float_type(w.scalar_type()) || w.dim() != 2 || idx.dim() != 2 ||
        (idx.scalar_type() != at::kLong && idx.scalar_type() != at::kInt) || idx.numel() == 0 || w.requires_grad())
      return false;
    return idx.min().item<int64_t>() >= 0 && idx.max().item<int64_t>() < w.size(0);
  }
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    // Bags of equal length L: flat indices with offsets 0, L, 2L, ... (what torch's functional
    // embedding_bag does for 2-D input).
    const at::Tensor idx = in[1].to(at::kLong).contiguous();
    const int64_t n = idx.size(0), l = idx.size(1);
    at::Tensor offsets = at::arange(0, n * l, l, idx.options());
    at::Tensor y = std::get<0>(at::embedding_bag(in[0], idx.reshape({-1}), offsets, false, /*mode sum*/ 0));
    out[0] = keepdims_ ? y.unsqueeze(1) : y;
  }

 private:
  bool keepdims_;
};

}  // namespace mixq::fusion_kernels
