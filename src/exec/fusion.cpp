#include "exec/fusion.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <omp.h>

#include "exec/conv_precision.h"
#include "runtime/onednn.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <limits>
#include <optional>
#include <set>
#include <unordered_map>

namespace mixq {

const char* fusion_kind_name(FusionKind k) {
  switch (k) {
    case FusionKind::kLinear: return "Linear";
    case FusionKind::kGelu: return "Gelu";
    case FusionKind::kLayerNorm: return "LayerNorm";
    case FusionKind::kConvBn: return "ConvBn";
    case FusionKind::kAddRelu: return "AddRelu";
    case FusionKind::kEmbedSum: return "EmbedSum";
    case FusionKind::kConvAct: return "ConvAct";
    case FusionKind::kHardSwish: return "HardSwish";
    case FusionKind::kSilu: return "Silu";
    case FusionKind::kQdq: return "QuantDequant";
    case FusionKind::kProducerQdq: return "ProducerQuantDequant";
    case FusionKind::kGemmAct: return "GemmAct";
  }
  return "?";
}

bool fusion_disabled_by_env() {
  const char* v = std::getenv("MIXQ_NO_FUSION");
  return v && *v && std::string(v) != "0";
}

namespace {

bool is_float_type(at::ScalarType t) { return t == at::kFloat || t == at::kDouble; }

// ---- fused kernels ---------------------------------------------------------------------------

// in: X, W, b (then ignored extras). Y = X @ W + b.
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
    if (x.dim() == 2) {
      out[0] = at::addmm(b, x, w);
      return;
    }
    std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
    shape.back() = w.size(1);
    out[0] = at::addmm(b, x.reshape({-1, x.size(-1)}), w).view(shape);
  }
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
    conv_->compute(cin, cout);
    act_.apply_(cout[0]);
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
    conv_->compute(cin, cout);
    act_.apply_(cout[0]);
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
// - GEMMs under kSerialMacs multiply-adds run on the calling thread only: for them OpenBLAS's
//   fork/join over OpenMP threads costs more than the second thread gains, and far more when the
//   other core is busy (784 -> 256 at batch 32: 125 us on 1 thread, 157-160 us on 2).
class GemmActKernel final : public FusedKernel {
 public:
  static constexpr int64_t kSerialMacs = int64_t{1} << 24;

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
    const bool serial = threads > 1 && macs < kSerialMacs && !omp_in_parallel();
    at::Tensor y;
    if (rt::DnnlLinear* lin = packed(b, has_c_ ? &in[2] : nullptr)) {
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

  // The weight (and bias) packed for oneDNN, re-made when either tensor or its version changes;
  // nullptr for inference tensors (a hook's output, a DequantizeLinear's: no version counter) and
  // non-CPU tensors.
  rt::DnnlLinear* packed(const at::Tensor& b, const at::Tensor* c) {
    if (b.is_inference() || (c && c->is_inference()) || !b.device().is_cpu() || !rt::DnnlConv::available())
      return nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    const uint32_t cv = c ? c->_version() : 0;
    if (!lin_ || !b.is_same(src_) || b._version() != version_ || (c && (!c->is_same(bias_src_) || cv != bias_version_))) {
      const at::Tensor w = b.contiguous(), bias = c ? c->contiguous() : at::Tensor();
      const int64_t n = trans_b_ ? w.size(0) : w.size(1), k = trans_b_ ? w.size(1) : w.size(0);
      lin_ = std::make_unique<rt::DnnlLinear>(w.data_ptr<float>(), n, k, /*k_major=*/!trans_b_,
                                          c ? bias.data_ptr<float>() : nullptr);
      src_ = b;
      version_ = b._version();
      if (c) {
        bias_src_ = *c;
        bias_version_ = cv;
      }
    }
    return lin_.get();
  }

  bool trans_b_, has_c_;
  Activation act_;
  int64_t flatten_axis_;
  std::mutex mu_;
  std::unique_ptr<rt::DnnlLinear> lin_;
  at::Tensor src_, bias_src_;  // the weight and bias lin_ was made from (identity + version)
  uint32_t version_ = 0, bias_version_ = 0;
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

// ---- matching --------------------------------------------------------------------------------

class Matcher {
 public:
  explicit Matcher(const Graph& g) : g_(g), claimed_(g.nodes.size(), 0), legacy_(exec_legacy_by_env()) {
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      for (const auto& o : g.nodes[i].outputs)
        if (!o.empty()) producer_[o] = static_cast<int>(i);
      for (const auto& v : g.nodes[i].inputs)
        if (!v.empty()) uses_[v]++;
    }
    for (const auto& vi : g.outputs) graph_outputs_.insert(vi.name);
  }

  std::vector<FusionGroup> run() {
    std::vector<FusionGroup> out;
    // LayerNorm first (largest), then GELU, then Linear; members never overlap.
    for (size_t i = 0; i < g_.nodes.size(); ++i)
      if (auto grp = match_layer_norm(static_cast<int>(i))) claim(*grp, out);
    for (size_t i = 0; i < g_.nodes.size(); ++i)
      if (auto grp = match_gelu(static_cast<int>(i))) claim(*grp, out);
    for (size_t i = 0; i < g_.nodes.size(); ++i)
      if (auto grp = match_linear(static_cast<int>(i))) claim(*grp, out);
    for (size_t i = 0; i < g_.nodes.size(); ++i)  // with a following activation first, then without
      if (auto grp = match_conv_bn(static_cast<int>(i), true)) claim(*grp, out);
    for (size_t i = 0; i < g_.nodes.size(); ++i)
      if (auto grp = match_conv_bn(static_cast<int>(i), false)) claim(*grp, out);
    if (!legacy_)
      for (size_t i = 0; i < g_.nodes.size(); ++i)
        if (auto grp = match_conv_act(static_cast<int>(i))) claim(*grp, out);
    for (size_t i = 0; i < g_.nodes.size(); ++i)
      if (auto grp = match_add_relu(static_cast<int>(i))) claim(*grp, out);
    if (!legacy_)
      for (size_t i = 0; i < g_.nodes.size(); ++i)
        if (auto grp = match_act_chain(static_cast<int>(i))) claim(*grp, out);
    for (size_t i = 0; i < g_.nodes.size(); ++i)
      if (auto grp = match_embed_sum(static_cast<int>(i))) claim(*grp, out);
    if (!legacy_) {
      for (size_t i = 0; i < g_.nodes.size(); ++i)
        if (auto grp = match_gemm_act(static_cast<int>(i))) claim(*grp, out);
    }
    if (!legacy_) {
      for (size_t i = 0; i < g_.nodes.size(); ++i)
        if (auto grp = match_qdq(static_cast<int>(i))) claim(*grp, out);
      merge_producer_qdq(out);
    }
    std::sort(out.begin(), out.end(),
              [](const FusionGroup& a, const FusionGroup& b) { return a.nodes.back() < b.nodes.back(); });
    return out;
  }

 private:
  const Node& node(int i) const { return g_.nodes[i]; }

  // Index of the unclaimed default-domain node of type `op` with one output producing v, or -1.
  int prod(const std::string& v, const char* op) const {
    auto it = producer_.find(v);
    if (it == producer_.end()) return -1;
    const Node& n = node(it->second);
    if (claimed_[it->second] || !n.domain.empty() || n.op_type != op || n.outputs.size() != 1) return -1;
    return it->second;
  }
  bool is_op(int i, const char* op, size_t n_inputs) const {
    const Node& n = node(i);
    return !claimed_[i] && n.domain.empty() && n.op_type == op && n.outputs.size() == 1 &&
           n.inputs.size() == n_inputs &&
           std::none_of(n.inputs.begin(), n.inputs.end(), [](const std::string& s) { return s.empty(); });
  }

  // The single-element value of a constant (initializer or Constant node output), with its dtype.
  std::optional<std::pair<double, at::ScalarType>> scalar_const(const std::string& v) const {
    at::Tensor t;
    auto init = g_.initializers.find(v);
    if (init != g_.initializers.end()) {
      t = init->second;
    } else {
      auto it = producer_.find(v);
      if (it == producer_.end()) return std::nullopt;
      const Node& n = node(it->second);
      if (!n.domain.empty() || n.op_type != "Constant" || n.outputs.size() != 1) return std::nullopt;
      if (const Attribute* a = n.attr("value"); a && a->type == AttrType::kTensor) t = a->t;
      else if (const Attribute* a = n.attr("value_float"); a && a->type == AttrType::kFloat)
        return std::make_pair(static_cast<double>(a->f), at::kFloat);
      else return std::nullopt;
    }
    if (!t.defined() || t.numel() != 1) return std::nullopt;
    if (!is_float_type(t.scalar_type()) && !at::isIntegralType(t.scalar_type(), false)) return std::nullopt;
    return std::make_pair(t.item<double>(), t.scalar_type());
  }
  // v is a float/double constant equal to `want` exactly (as a value of the constant's dtype).
  std::optional<at::ScalarType> float_const_eq(const std::string& v, double want) const {
    auto c = scalar_const(v);
    if (!c || !is_float_type(c->second)) return std::nullopt;
    double w = c->second == at::kFloat ? static_cast<double>(static_cast<float>(want)) : want;
    if (c->first != w) return std::nullopt;
    return c->second;
  }

  // For a binary node i, calls f(a, b) with its inputs in both orders; returns the first success.
  template <typename F>
  static auto either(const Node& n, F f) -> decltype(f(n.inputs[0], n.inputs[1])) {
    if (auto r = f(n.inputs[0], n.inputs[1])) return r;
    return f(n.inputs[1], n.inputs[0]);
  }

  // Completes `grp` (nodes, interior, constants and the data inputs already set): checks the
  // interior-value rules and appends every other outside value the members read to `inputs`.
  bool finish(FusionGroup& grp) const {
    std::sort(grp.nodes.begin(), grp.nodes.end());
    if (std::adjacent_find(grp.nodes.begin(), grp.nodes.end()) != grp.nodes.end()) return false;
    std::set<int> members(grp.nodes.begin(), grp.nodes.end());
    std::set<std::string> produced;
    for (int m : grp.nodes) {
      if (claimed_[m]) return false;
      produced.insert(node(m).outputs[0]);
    }
    grp.output = node(grp.nodes.back()).outputs[0];
    grp.interior.clear();
    std::unordered_map<std::string, int> inner_uses;
    for (int m : grp.nodes)
      for (const auto& v : node(m).inputs) inner_uses[v]++;
    for (const auto& v : produced) {
      if (v == grp.output) continue;
      if (graph_outputs_.count(v)) return false;
      auto u = uses_.find(v);
      if (u == uses_.end() || u->second != inner_uses[v]) return false;  // an outside consumer
      grp.interior.push_back(v);
    }
    for (int m : grp.nodes)
      for (const auto& v : node(m).inputs)
        if (!produced.count(v) && std::find(grp.inputs.begin(), grp.inputs.end(), v) == grp.inputs.end())
          grp.inputs.push_back(v);
    return true;
  }

  void claim(FusionGroup& grp, std::vector<FusionGroup>& out) {
    for (int m : grp.nodes) claimed_[m] = 1;
    out.push_back(std::move(grp));
  }

  // ReduceMean over one axis with keepdims; returns the axis.
  std::optional<int64_t> reduce_mean_axis(int i) const {
    const Node& n = node(i);
    if (!n.domain.empty() || n.op_type != "ReduceMean" || n.outputs.size() != 1 || n.inputs.empty()) return std::nullopt;
    const Attribute* kd = n.attr("keepdims");
    if (kd && (kd->type != AttrType::kInt || kd->i != 1)) return std::nullopt;
    std::vector<int64_t> axes;
    if (const Attribute* a = n.attr("axes")) {
      if (a->type != AttrType::kInts || n.inputs.size() != 1) return std::nullopt;
      axes = a->ints;
    } else if (n.inputs.size() == 2 && !n.inputs[1].empty()) {  // opset 18: axes input
      auto c = scalar_const(n.inputs[1]);
      if (!c || !at::isIntegralType(c->second, false)) return std::nullopt;
      axes = {static_cast<int64_t>(c->first)};
    } else {
      return std::nullopt;  // reduce over all axes
    }
    if (axes.size() != 1) return std::nullopt;
    return axes[0];
  }

  std::optional<FusionGroup> match_linear(int i) const {
    if (!is_op(i, "Add", 2)) return std::nullopt;
    return either(node(i), [&](const std::string& y, const std::string& b) -> std::optional<FusionGroup> {
      int mm = prod(y, "MatMul");
      if (mm < 0 || !is_op(mm, "MatMul", 2)) return std::nullopt;
      const std::string& x = node(mm).inputs[0];
      const std::string& w = node(mm).inputs[1];
      auto wi = g_.initializers.find(w);
      if (wi != g_.initializers.end() && wi->second.dim() != 2) return std::nullopt;
      auto bi = g_.initializers.find(b);
      if (bi != g_.initializers.end() && bi->second.dim() != 1) return std::nullopt;
      FusionGroup grp{FusionKind::kLinear, {mm, i}, {x, w, b}, {}, {}, {}, nullptr};
      if (!finish(grp)) return std::nullopt;
      grp.kernel = std::make_unique<LinearKernel>();
      return grp;
    });
  }

  // The activation ending at node i: Relu; Clip with constant float bounds (opset 11+); hard-swish
  // Mul(x, HardSigmoid(x)); SiLU Mul(x, Sigmoid(x)) (either operand order). Sets the activation's
  // input value, its member nodes and the constants it bakes in. `chains_only`: the two-node
  // chains only (standalone fusion: a lone Relu or Clip is already one node).
  struct ActTail {
    Activation act;
    std::string input;
    std::vector<int> members;
    std::vector<std::string> constants;
  };
  std::optional<ActTail> match_act_tail(int i, bool chains_only) const {
    const Node& n = node(i);
    if (!chains_only && is_op(i, "Relu", 1)) {
      ActTail t;
      t.act.kind = Activation::kRelu;
      t.input = n.inputs[0];
      t.members = {i};
      return t;
    }
    if (legacy_) return std::nullopt;
    if (!chains_only && g_.opset() >= 14 && is_op(i, "HardSwish", 1)) {  // exactly at::hardswish
      ActTail t;
      t.act.kind = Activation::kHardSwish;
      t.act.alpha = static_cast<double>(1.0f / 6.0f);
      t.act.beta = 0.5;
      t.input = n.inputs[0];
      t.members = {i};
      return t;
    }
    if (!chains_only && g_.opset() >= 11 && !claimed_[i] && n.domain.empty() && n.op_type == "Clip" &&
        n.outputs.size() == 1 && !n.inputs.empty() && n.inputs.size() <= 3 && !n.inputs[0].empty()) {
      ActTail t;
      t.act.kind = Activation::kClip;
      t.input = n.inputs[0];
      t.members = {i};
      for (size_t k = 1; k < n.inputs.size(); ++k) {
        if (n.inputs[k].empty()) continue;
        auto c = scalar_const(n.inputs[k]);
        if (!c || !is_float_type(c->second) || std::isnan(c->first)) return std::nullopt;
        (k == 1 ? t.act.lo : t.act.hi) = c->first;
        t.constants.push_back(n.inputs[k]);
      }
      if (t.act.lo && t.act.hi && *t.act.lo > *t.act.hi) return std::nullopt;
      return t;
    }
    if (!is_op(i, "Mul", 2)) return std::nullopt;
    return either(n, [&](const std::string& x, const std::string& gate) -> std::optional<ActTail> {
      ActTail t;
      t.input = x;
      int hs = prod(gate, "HardSigmoid");
      if (hs >= 0 && is_op(hs, "HardSigmoid", 1) && node(hs).inputs[0] == x) {
        const Attribute* a = node(hs).attr("alpha");
        const Attribute* b = node(hs).attr("beta");
        if ((a && a->type != AttrType::kFloat) || (b && b->type != AttrType::kFloat)) return std::nullopt;
        t.act.kind = Activation::kHardSwish;
        t.act.alpha = a ? a->f : 0.2f;
        t.act.beta = b ? b->f : 0.5f;
        t.members = {hs, i};
        return t;
      }
      int sg = prod(gate, "Sigmoid");
      if (sg >= 0 && is_op(sg, "Sigmoid", 1) && node(sg).inputs[0] == x) {
        t.act.kind = Activation::kSilu;
        t.members = {sg, i};
        return t;
      }
      return std::nullopt;
    });
  }

  // Node i ends Conv -> activation (the Conv's output read by the activation only).
  std::optional<FusionGroup> match_conv_act(int i) const {
    auto tail = match_act_tail(i, false);
    if (!tail) return std::nullopt;
    int conv = prod(tail->input, "Conv");
    if (conv < 0) return std::nullopt;
    const Node& c = node(conv);
    if (c.inputs.size() < 2 || c.inputs.size() > 3 || c.inputs[0].empty() || c.inputs[1].empty() ||
        (c.inputs.size() == 3 && c.inputs[2].empty()))
      return std::nullopt;
    std::vector<int> members = tail->members;
    members.push_back(conv);
    FusionGroup grp{FusionKind::kConvAct, members, {c.inputs[0], c.inputs[1]}, {}, {}, {}, nullptr};
    if (c.inputs.size() == 3) grp.inputs.push_back(c.inputs[2]);
    grp.constants = tail->constants;
    if (!finish(grp)) return std::nullopt;
    NodeInfo info(g_, c, g_.opset());
    grp.kernel = std::make_unique<ConvActKernel>(find_op("Conv", g_.opset())->make(info), tail->act, c.inputs.size());
    return grp;
  }

  // Node i ends Gemm -> activation (the Gemm's output read by the activation only): float fully
  // connected layers (alpha = beta = 1, transA = 0; C absent or 1-D per GemmActKernel::accepts at
  // run time). A Gemm without an activation stays one node (one kernel already).
  std::optional<FusionGroup> match_gemm_act(int i) const {
    auto tail = match_act_tail(i, false);
    if (!tail) return std::nullopt;
    int gemm = prod(tail->input, "Gemm");
    if (gemm < 0) return std::nullopt;
    if (!is_op(gemm, "Gemm", 2) && !is_op(gemm, "Gemm", 3)) return std::nullopt;
    const Node& n = node(gemm);
    if (n.inputs[0].empty() || n.inputs[1].empty() || (n.inputs.size() == 3 && n.inputs[2].empty()))
      return std::nullopt;
    auto attr_is = [&](const char* name, double want, bool is_float) {
      const Attribute* a = n.attr(name);
      if (!a) return true;
      if (is_float) return a->type == AttrType::kFloat && static_cast<double>(a->f) == want;
      return a->type == AttrType::kInt && static_cast<double>(a->i) == want;
    };
    if (!attr_is("alpha", 1.0, true) || !attr_is("beta", 1.0, true) || !attr_is("transA", 0, false))
      return std::nullopt;
    const Attribute* tb = n.attr("transB");
    if (tb && tb->type != AttrType::kInt) return std::nullopt;
    const bool trans_b = tb && tb->i != 0;
    std::vector<int> members = {gemm};
    members.insert(members.end(), tail->members.begin(), tail->members.end());
    // Flatten(axis >= 0) -> Gemm: the flatten is a view taken inside the kernel (one node less).
    std::string a_in = n.inputs[0];
    int64_t flatten_axis = -1;
    int fl = prod(a_in, "Flatten");
    if (fl >= 0 && is_op(fl, "Flatten", 1)) {
      const Attribute* ax = node(fl).attr("axis");
      int64_t axis = ax ? ax->i : 1;
      if ((!ax || ax->type == AttrType::kInt) && axis >= 0) {
        members.push_back(fl);
        a_in = node(fl).inputs[0];
        flatten_axis = axis;
      }
    }
    FusionGroup grp{FusionKind::kGemmAct, members, {a_in, n.inputs[1]}, {}, {}, {}, nullptr};
    const bool has_c = n.inputs.size() == 3;
    if (has_c) grp.inputs.push_back(n.inputs[2]);
    grp.constants = tail->constants;
    if (!finish(grp)) {
      if (flatten_axis < 0) return std::nullopt;  // the flatten's output has another reader: without it
      grp = FusionGroup{FusionKind::kGemmAct, {gemm}, {n.inputs[0], n.inputs[1]}, {}, {}, {}, nullptr};
      grp.nodes.insert(grp.nodes.end(), tail->members.begin(), tail->members.end());
      if (has_c) grp.inputs.push_back(n.inputs[2]);
      grp.constants = tail->constants;
      flatten_axis = -1;
      if (!finish(grp)) return std::nullopt;
    }
    grp.kernel = std::make_unique<GemmActKernel>(trans_b, has_c, tail->act, flatten_axis);
    return grp;
  }

  // Standalone hard-swish / SiLU chains (after a node other than Conv, or when the Conv's output
  // has other readers).
  std::optional<FusionGroup> match_act_chain(int i) const {
    auto tail = match_act_tail(i, true);
    if (!tail) return std::nullopt;
    FusionGroup grp{tail->act.kind == Activation::kSilu ? FusionKind::kSilu : FusionKind::kHardSwish,
                    tail->members, {tail->input}, {}, {}, {}, nullptr};
    if (!finish(grp) || grp.inputs.size() != 1) return std::nullopt;
    grp.kernel = std::make_unique<ActKernel>(tail->act);
    return grp;
  }

  // Node i is the activation (with_act) or the BatchNormalization ending the chain.
  std::optional<FusionGroup> match_conv_bn(int i, bool with_act) const {
    int bn = i;
    std::optional<ActTail> tail;
    if (with_act) {
      tail = match_act_tail(i, false);
      if (!tail) return std::nullopt;
      bn = prod(tail->input, "BatchNormalization");
      if (bn < 0) return std::nullopt;
    }
    if (!is_op(bn, "BatchNormalization", 5)) return std::nullopt;
    const Node& b = node(bn);
    const int64_t opset = g_.opset();
    if (opset < 9) return std::nullopt;  // `spatial` semantics
    if (const Attribute* tm = b.attr("training_mode"); tm && (tm->type != AttrType::kInt || tm->i != 0))
      return std::nullopt;
    const Attribute* ea = b.attr("epsilon");
    if (ea && ea->type != AttrType::kFloat) return std::nullopt;
    const double eps = ea ? ea->f : 1e-5f;
    int conv = prod(b.inputs[0], "Conv");
    if (conv < 0) return std::nullopt;
    const Node& c = node(conv);
    if (c.inputs.size() < 2 || c.inputs.size() > 3 || c.inputs[0].empty() || c.inputs[1].empty()) return std::nullopt;
    std::vector<int> members = {conv, bn};
    if (tail) members.insert(members.end(), tail->members.begin(), tail->members.end());
    // The Conv bias, when present, is appended by finish() (a value members read from outside).
    FusionGroup grp{FusionKind::kConvBn, members, {c.inputs[0], c.inputs[1], b.inputs[1], b.inputs[2],
                                                   b.inputs[3], b.inputs[4]}, {}, {}, {}, nullptr};
    if (tail) grp.constants = tail->constants;
    if (!finish(grp)) return std::nullopt;
    NodeInfo info(g_, c, opset);
    grp.kernel = std::make_unique<ConvBnKernel>(find_op("Conv", opset)->make(info), eps,
                                                tail ? tail->act : Activation(), c.inputs.size() == 3);
    return grp;
  }

  std::optional<FusionGroup> match_embed_sum(int i) const {
    const Node& r = node(i);
    if (claimed_[i] || !r.domain.empty() || r.op_type != "ReduceSum" || r.outputs.size() != 1 || r.inputs.empty())
      return std::nullopt;
    std::vector<int64_t> axes;
    std::string axes_value;
    if (const Attribute* a = r.attr("axes")) {  // before opset 13
      if (a->type != AttrType::kInts || r.inputs.size() != 1) return std::nullopt;
      axes = a->ints;
    } else if (r.inputs.size() == 2 && !r.inputs[1].empty()) {
      auto c = scalar_const(r.inputs[1]);
      if (!c || !at::isIntegralType(c->second, false)) return std::nullopt;
      axes = {static_cast<int64_t>(c->first)};
      axes_value = r.inputs[1];
    }
    if (axes != std::vector<int64_t>{1}) return std::nullopt;
    const Attribute* kd = r.attr("keepdims");
    if (kd && kd->type != AttrType::kInt) return std::nullopt;
    const bool keepdims = !kd || kd->i != 0;
    int gather = prod(r.inputs[0], "Gather");
    if (gather < 0 || !is_op(gather, "Gather", 2)) return std::nullopt;
    const Attribute* ax = node(gather).attr("axis");
    if (ax && (ax->type != AttrType::kInt || ax->i != 0)) return std::nullopt;
    FusionGroup grp{FusionKind::kEmbedSum, {gather, i}, {node(gather).inputs[0], node(gather).inputs[1]}, {}, {}, {}, nullptr};
    if (!axes_value.empty()) grp.constants = {axes_value};
    if (!finish(grp)) return std::nullopt;
    grp.kernel = std::make_unique<EmbedSumKernel>(keepdims);
    return grp;
  }

  // Node i is a DequantizeLinear reading a QuantizeLinear with the same scale and zero point
  // values, optionally after a Clip (opset 11+, bounds as inputs) read by the QuantizeLinear only.
  std::optional<FusionGroup> match_qdq(int i) const {
    if (!is_op(i, "DequantizeLinear", 3)) return std::nullopt;
    const Node& dq = node(i);
    int q = prod(dq.inputs[0], "QuantizeLinear");
    if (q < 0 || !is_op(q, "QuantizeLinear", 3) || node(q).inputs[1] != dq.inputs[1] || node(q).inputs[2] != dq.inputs[2])
      return std::nullopt;
    const std::string& x = node(q).inputs[0];
    int clip = prod(x, "Clip");
    if (clip >= 0 && g_.opset() >= 11 && is_op(clip, "Clip", 3)) {
      const Node& c = node(clip);
      FusionGroup grp{FusionKind::kQdq, {clip, q, i}, {c.inputs[0], dq.inputs[1], dq.inputs[2], c.inputs[1], c.inputs[2]},
                      {}, {}, {}, nullptr};
      if (finish(grp) && grp.inputs.size() == 5) {
        grp.kernel = std::make_unique<QdqKernel>(true);
        return grp;
      }
    }
    FusionGroup grp{FusionKind::kQdq, {q, i}, {x, dq.inputs[1], dq.inputs[2]}, {}, {}, {}, nullptr};
    if (!finish(grp) || grp.inputs.size() != 3) return std::nullopt;
    grp.kernel = std::make_unique<QdqKernel>(false);
    return grp;
  }

  // A QuantDequant group whose input only it reads and a Conv makes (alone, or ending a ConvAct
  // or ConvBn group), or a Mul or Add node: one ProducerQdq group, the QDQ in place on the
  // producer's result.
  void merge_producer_qdq(std::vector<FusionGroup>& out) {
    std::unordered_map<std::string, size_t> by_output;
    for (size_t k = 0; k < out.size(); ++k) by_output[out[k].output] = k;
    std::vector<char> drop(out.size(), 0);
    for (size_t k = 0; k < out.size(); ++k) {
      if (out[k].kind != FusionKind::kQdq) continue;
      const std::string x = out[k].inputs[0];
      auto u = uses_.find(x);
      auto p = producer_.find(x);
      if (u == uses_.end() || u->second != 1 || graph_outputs_.count(x) || p == producer_.end()) continue;
      FusionGroup prod;
      std::unique_ptr<OpKernel> pk;
      bool fused = true;
      auto h = by_output.find(x);
      if (h != by_output.end()) {  // the end of a convolution group
        FusionGroup& g = out[h->second];
        if (drop[h->second] || (g.kind != FusionKind::kConvAct && g.kind != FusionKind::kConvBn)) continue;
        prod = std::move(g);
        pk = std::move(prod.kernel);
        drop[h->second] = 1;
      } else {  // a Conv, Mul or Add node alone
        const int c = p->second;
        const Node& n = node(c);
        const bool conv = n.op_type == "Conv", binary = n.op_type == "Mul" || n.op_type == "Add";
        if (claimed_[c] || !n.domain.empty() || n.outputs.size() != 1 || (!conv && !binary) ||
            n.inputs.size() < 2 || n.inputs.size() > (conv ? 3u : 2u) ||
            std::any_of(n.inputs.begin(), n.inputs.end(), [](const std::string& v) { return v.empty(); }))
          continue;
        NodeInfo info(g_, n, g_.opset());
        prod = FusionGroup{FusionKind::kConvAct, {c}, n.inputs, x, {}, {}, nullptr};
        if (conv) {
          pk = std::make_unique<ConvActKernel>(find_op("Conv", g_.opset())->make(info), Activation{}, n.inputs.size());
        } else {
          pk = find_op(n.op_type, g_.opset())->make(info);
          fused = false;
        }
        claimed_[c] = 1;
      }
      FusionGroup& q = out[k];
      FusionGroup m{FusionKind::kProducerQdq, prod.nodes, prod.inputs, q.output, prod.interior, prod.constants, nullptr};
      m.nodes.insert(m.nodes.end(), q.nodes.begin(), q.nodes.end());
      std::sort(m.nodes.begin(), m.nodes.end());
      m.inputs.insert(m.inputs.end(), q.inputs.begin() + 1, q.inputs.end());
      m.interior.push_back(x);
      m.interior.insert(m.interior.end(), q.interior.begin(), q.interior.end());
      m.constants.insert(m.constants.end(), q.constants.begin(), q.constants.end());
      m.kernel = std::make_unique<ProducerQdqKernel>(std::move(pk), fused, prod.inputs.size(),
                                                     std::unique_ptr<QdqKernel>(static_cast<QdqKernel*>(q.kernel.release())));
      out[k] = std::move(m);
    }
    std::vector<FusionGroup> kept;
    for (size_t k = 0; k < out.size(); ++k)
      if (!drop[k]) kept.push_back(std::move(out[k]));
    out = std::move(kept);
  }

  std::optional<FusionGroup> match_add_relu(int i) const {
    if (!is_op(i, "Relu", 1)) return std::nullopt;
    int add = prod(node(i).inputs[0], "Add");
    if (add < 0 || !is_op(add, "Add", 2)) return std::nullopt;
    FusionGroup grp{FusionKind::kAddRelu, {add, i}, {node(add).inputs[0], node(add).inputs[1]}, {}, {}, {}, nullptr};
    if (!finish(grp)) return std::nullopt;
    grp.kernel = std::make_unique<AddReluKernel>();
    return grp;
  }

  std::optional<FusionGroup> match_gelu(int i) const {
    if (!is_op(i, "Mul", 2)) return std::nullopt;
    const Node& outer = node(i);
    // out = Mul(inner, z) with inner = Mul(p, q): the three leaves {p, q, z} are x, 0.5 and
    // (1 + erf(x / sqrt2)) in some order.
    return either(outer, [&](const std::string& inner_v, const std::string& z) -> std::optional<FusionGroup> {
      int inner = prod(inner_v, "Mul");
      if (inner < 0 || !is_op(inner, "Mul", 2)) return std::nullopt;
      std::vector<std::string> leaves = {node(inner).inputs[0], node(inner).inputs[1], z};
      for (int h = 0; h < 3; ++h) {
        auto half_t = float_const_eq(leaves[h], 0.5);
        if (!half_t) continue;
        for (int a = 0; a < 3; ++a) {
          if (a == h) continue;
          const std::string& x = leaves[3 - h - a];
          int add = prod(leaves[a], "Add");
          if (add < 0 || !is_op(add, "Add", 2)) continue;
          auto grp = either(node(add), [&](const std::string& e, const std::string& one) -> std::optional<FusionGroup> {
            auto one_t = float_const_eq(one, 1.0);
            int erf = prod(e, "Erf");
            if (!one_t || *one_t != *half_t || erf < 0 || !is_op(erf, "Erf", 1)) return std::nullopt;
            const std::string& t = node(erf).inputs[0];
            int scale = prod(t, "Div");
            std::string c;
            if (scale >= 0 && is_op(scale, "Div", 2) && node(scale).inputs[0] == x) {
              c = node(scale).inputs[1];
              auto ct = float_const_eq(c, std::sqrt(2.0));
              if (!ct || *ct != *half_t) return std::nullopt;
            } else {
              scale = prod(t, "Mul");
              if (scale < 0 || !is_op(scale, "Mul", 2)) return std::nullopt;
              const Node& sn = node(scale);
              c = sn.inputs[0] == x ? sn.inputs[1] : sn.inputs[1] == x ? sn.inputs[0] : std::string();
              if (c.empty()) return std::nullopt;
              auto ct = float_const_eq(c, 1.0 / std::sqrt(2.0));
              if (!ct || *ct != *half_t) return std::nullopt;
            }
            FusionGroup grp{FusionKind::kGelu, {scale, erf, add, inner, i}, {x}, {}, {}, {}, nullptr};
            grp.constants = {c, one, leaves[h]};
            if (!finish(grp)) return std::nullopt;
            // x itself must come from outside (e.g. not be the inner product).
            if (std::find(grp.interior.begin(), grp.interior.end(), x) != grp.interior.end()) return std::nullopt;
            grp.kernel = std::make_unique<GeluKernel>(*half_t);
            return grp;
          });
          if (grp) return grp;
        }
      }
      return std::nullopt;
    });
  }

  std::optional<FusionGroup> match_layer_norm(int i) const {
    if (!is_op(i, "Add", 2)) return std::nullopt;
    return either(node(i), [&](const std::string& yg, const std::string& beta) -> std::optional<FusionGroup> {
      int mul = prod(yg, "Mul");
      if (mul < 0 || !is_op(mul, "Mul", 2)) return std::nullopt;
      return either(node(mul), [&](const std::string& y, const std::string& gamma) -> std::optional<FusionGroup> {
        int div = prod(y, "Div");
        if (div < 0 || !is_op(div, "Div", 2)) return std::nullopt;
        const std::string& d = node(div).inputs[0];
        int sqrt = prod(node(div).inputs[1], "Sqrt");
        int sub = prod(d, "Sub");
        if (sqrt < 0 || sub < 0 || !is_op(sqrt, "Sqrt", 1) || !is_op(sub, "Sub", 2)) return std::nullopt;
        const std::string& x = node(sub).inputs[0];
        int rm1 = prod(node(sub).inputs[1], "ReduceMean");
        if (rm1 < 0 || node(rm1).inputs[0] != x) return std::nullopt;
        int adde = prod(node(sqrt).inputs[0], "Add");
        if (adde < 0 || !is_op(adde, "Add", 2)) return std::nullopt;
        return either(node(adde), [&](const std::string& v, const std::string& eps_v) -> std::optional<FusionGroup> {
          auto eps = scalar_const(eps_v);
          int rm2 = prod(v, "ReduceMean");
          if (!eps || !is_float_type(eps->second) || !std::isfinite(eps->first) || eps->first < 0 || rm2 < 0)
            return std::nullopt;
          int pw = prod(node(rm2).inputs[0], "Pow");
          if (pw < 0 || !is_op(pw, "Pow", 2) || node(pw).inputs[0] != d) return std::nullopt;
          auto two = scalar_const(node(pw).inputs[1]);
          if (!two || two->first != 2.0) return std::nullopt;
          auto ax1 = reduce_mean_axis(rm1), ax2 = reduce_mean_axis(rm2);
          if (!ax1 || !ax2 || *ax1 != *ax2) return std::nullopt;
          // gamma/beta known now must be 1-D (the run-time check covers the others).
          for (const std::string* p : {&gamma, &beta}) {
            auto it = g_.initializers.find(*p);
            if (it != g_.initializers.end() && it->second.dim() != 1) return std::nullopt;
          }
          FusionGroup grp{FusionKind::kLayerNorm, {rm1, sub, pw, rm2, adde, sqrt, div, mul, i},
                          {x, gamma, beta}, {}, {}, {}, nullptr};
          grp.constants = {node(pw).inputs[1], eps_v};
          if (node(rm1).inputs.size() == 2) grp.constants.push_back(node(rm1).inputs[1]);
          if (node(rm2).inputs.size() == 2) grp.constants.push_back(node(rm2).inputs[1]);
          if (!finish(grp)) return std::nullopt;
          for (const std::string* p : {&x, &gamma, &beta})
            if (std::find(grp.interior.begin(), grp.interior.end(), *p) != grp.interior.end()) return std::nullopt;
          grp.kernel = std::make_unique<LayerNormKernel>(*ax1, eps->first, eps->second);
          return grp;
        });
      });
    });
  }

  const Graph& g_;
  std::unordered_map<std::string, int> producer_;
  std::unordered_map<std::string, int> uses_;
  std::set<std::string> graph_outputs_;
  std::vector<char> claimed_;
  bool legacy_;  // MIXQ_EXEC_LEGACY: only the fusions that existed before the Conv + activation ones
};

}  // namespace

std::vector<FusionGroup> find_fusions(const Graph& g) { return Matcher(g).run(); }

}  // namespace mixq
