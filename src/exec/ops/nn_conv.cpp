// Conv and ConvTranspose (1-D/2-D/3-D) on at::convolution.
//
// libtorch pads symmetrically only, so the symmetric part of ONNX's (begin, end) pads goes to
// at::convolution and only the excess on one side becomes an explicit at::constant_pad_nd (Conv)
// or a crop/zero-extension of the result (ConvTranspose). Symmetric pads, the usual case, run
// as one at::convolution call with no copies.
//
// Inference (grad mode off) on float32 4-D tensors runs channels-last (exec/conv_precision.h):
// the input is made NHWC once (the first Conv of a chain; later ones receive NHWC outputs) and the
// weight's NHWC copy is cached while the weight tensor is unchanged. There, 2-D convolutions run
// on oneDNN directly (exec/dnnl_conv_cache.h: weights reordered once, not on every call; that copy
// takes the place of the NHWC one) with asymmetric pads and a fused Relu/Clip; at::convolution is
// the fallback, and the path of dense layers with more than 512 KiB of weights. Measured (Zen 3,
// batch 32, 2 threads): 1.2-1.7x libtorch's call on depthwise and 1x1 layers at 224x224, 1.1-1.4x
// on the 28x28 fixtures' 3x3 layers, the same on resnet18's.
#include <ATen/ATen.h>

#include <mutex>

#include "exec/conv_precision.h"
#include "exec/dnnl_conv_cache.h"
#include "exec/ops/nn_internal.h"

namespace mixq {
namespace nn {
namespace {

void check_ranks(const at::Tensor& x, const at::Tensor& w, const Spatial& sp) {
  if (x.dim() != sp.nd + 2 || w.dim() != sp.nd + 2)
    runtime_fail("expected X and W of rank " + std::to_string(sp.nd + 2) + " (from the node's " +
                 "spatial attributes or its first input), got ranks " + std::to_string(x.dim()) +
                 " and " + std::to_string(w.dim()));
  for (size_t i = 0; i < sp.kernel.size(); ++i)
    if (w.size(2 + i) != sp.kernel[i])
      runtime_fail("W's spatial shape " + c10::str(w.sizes()) + " does not match kernel_shape");
}

int64_t floor_half(int64_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

class Conv final : public OpKernel {
 public:
  static constexpr int64_t kMaxDenseDnnlWeights = int64_t{1} << 17;
  explicit Conv(const NodeInfo& info)
      : group_(info.get_int("group", 1)), channels_last_(conv_channels_last_enabled()), dnnl_on_(conv_dnnl_enabled()) {
    require_inputs(info, 2);
    sp_.parse(info, /*kernel_required=*/false, /*allow_dilations=*/true);
    if (group_ < 1) info.fail("attribute 'group' must be positive");
    if (sp_.nd < 0)
      if (const at::Tensor* w = info.constant_input(1)) sp_.set_rank(w->dim() - 2);
    if (sp_.nd >= 0) prepare();
  }

  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    if (!run_dnnl(in, out, nullptr)) compute_libtorch(in, out);
  }

  // The clamp as oneDNN's post-op; where oneDNN does not take the layer, declines (the caller runs
  // compute() and its own activation).
  bool compute_clamped(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out, float lo, float hi) override {
    const kernels::ActClamp act{lo, hi};
    return run_dnnl(in, out, &act);
  }

 private:
  // The oneDNN path: inference (grad mode off), float32, 2-D, channels-last enabled.
  bool run_dnnl(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out, const kernels::ActClamp* act) {
    const at::Tensor& x = in[0];
    const at::Tensor& w = in[1];
    if (!dnnl_on_ || at::GradMode::is_enabled() || sp_.nd != 2 || x.dim() != 4 || w.dim() != 4 ||
        x.scalar_type() != at::kFloat || conv_precision() != ConvPrecision::kFloat32)
      return false;
    check_ranks(x, w, sp_);
    if (dynamic_pads_) set_pads(x, w);
    // Dense layers with more than 512 KiB of weights stay on libtorch: there the call's own reorder
    // is small next to the math, while a second, reordered copy of a large model's weights is not
    // (ResNet-50 eval: +74-89 MB peak RSS with its dense layers here, for no measured speed).
    if (group_ == 1 && w.numel() > kMaxDenseDnnlWeights) return false;
    rt::ConvGeom g;
    g.G = group_;
    g.sh = sp_.strides[0];
    g.sw = sp_.strides[1];
    g.dh = sp_.dilations[0];
    g.dw = sp_.dilations[1];
    // pad_ holds the symmetric part, extra_ the excess per side (last axis first).
    g.pt = pad_[0] + extra_[2];
    g.pb = pad_[0] + extra_[3];
    g.pl = pad_[1] + extra_[0];
    g.pr = pad_[1] + extra_[1];
    at::Tensor y = dnnl_.run(x, w, in.size() > 2 ? in[2] : at::Tensor(), g, act);
    if (!y.defined()) return false;
    out[0] = std::move(y);
    return true;
  }

  void compute_libtorch(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) {
    const at::Tensor& x = in[0];
    const at::Tensor& w = in[1];
    if (sp_.nd < 0) {
      sp_.set_rank(x.dim() - 2);
      prepare();
    }
    check_ranks(x, w, sp_);
    if (dynamic_pads_) set_pads(x, w);
    at::Tensor bias = in.size() > 2 ? in[2] : at::Tensor();
    // The math dtype: float for half types (CPU kernels), bf16 inside a training loop that asks
    // for it (exec/conv_precision.h), else the input's own; the result is cast back to x's dtype.
    // Tensors in the input's dtype pass through untouched (a mismatched W still fails in libtorch).
    at::ScalarType math = is_reduced_float(x) ? at::kFloat : x.scalar_type();
    if (x.scalar_type() == at::kFloat && conv_precision() == ConvPrecision::kBFloat16) math = at::kBFloat16;
    const bool recast = math != x.scalar_type();
    auto cast = [&](const at::Tensor& t) { return recast && t.defined() ? t.to(math) : t; };
    at::Tensor xp = need_extra_ ? at::constant_pad_nd(x, extra_) : x;
    if (channels_last_ && !recast && x.scalar_type() == at::kFloat && x.dim() == 4 && w.dim() == 4 &&
        !at::GradMode::is_enabled()) {
      constexpr auto kCL = at::MemoryFormat::ChannelsLast;
      if (!xp.is_contiguous(kCL)) xp = xp.contiguous(kCL);
      out[0] = at::convolution(xp, channels_last_weight(w), bias, sp_.strides, pad_, sp_.dilations, false, zeros_,
                               group_);
      return;
    }
    out[0] = at::convolution(cast(xp), cast(w), cast(bias), sp_.strides, pad_, sp_.dilations, false, zeros_, group_);
    if (recast) out[0] = out[0].to(x.scalar_type());
  }

  void prepare() {
    zeros_.assign(sp_.nd, 0);
    pad_.assign(sp_.nd, 0);
    extra_.assign(2 * sp_.nd, 0);
    dynamic_pads_ = sp_.auto_pad == AutoPad::kSameUpper || sp_.auto_pad == AutoPad::kSameLower;
    if (!dynamic_pads_) set_pads(at::Tensor(), at::Tensor());
  }

  // x/w are only read for SAME_* (input and kernel sizes decide the padding).
  void set_pads(const at::Tensor& x, const at::Tensor& w) {
    need_extra_ = false;
    for (int64_t i = 0; i < sp_.nd; ++i) {
      int64_t b, e;
      sp_.pads_for(i, x.defined() ? x.size(2 + i) : 0, w.defined() ? w.size(2 + i) : 1, b, e);
      int64_t p = std::min(b, e);
      pad_[i] = p;
      // constant_pad_nd lists the last axis first.
      extra_[2 * (sp_.nd - 1 - i)] = b - p;
      extra_[2 * (sp_.nd - 1 - i) + 1] = e - p;
      need_extra_ = need_extra_ || b != p || e != p;
    }
  }

  // W in NHWC order, cached while W is the same tensor at the same version (inference tensors,
  // e.g. a hook's fake-quantized copy, have no version counter: converted on every call).
  at::Tensor channels_last_weight(const at::Tensor& w) {
    constexpr auto kCL = at::MemoryFormat::ChannelsLast;
    if (w.is_contiguous(kCL)) return w;
    // Inference tensors (no version counter) and the large dense layers (those oneDNN does not take
    // here, more than 512 KiB each) are converted per call: a cached copy of ResNet-50's large
    // layers held 45 MB per Conv kernel (and a fused group's Conv is a second kernel), while the
    // transient copy is small next to those layers' math.
    if (w.is_inference() || w.numel() > kMaxDenseDnnlWeights) return w.contiguous(kCL);
    std::lock_guard<std::mutex> lock(mu_);
    if (!w_src_.is_same(w) || w_version_ != w._version()) {
      w_cl_ = w.contiguous(kCL);
      w_src_ = w;
      w_version_ = w._version();
    }
    return w_cl_;
  }

  Spatial sp_;
  int64_t group_;
  bool channels_last_, dnnl_on_;
  bool dynamic_pads_ = false, need_extra_ = false;
  std::vector<int64_t> zeros_, pad_, extra_;
  std::mutex mu_;
  at::Tensor w_src_, w_cl_;
  uint32_t w_version_ = 0;
  DnnlConvCache dnnl_;
};

class ConvTranspose final : public OpKernel {
 public:
  explicit ConvTranspose(const NodeInfo& info) : group_(info.get_int("group", 1)) {
    require_inputs(info, 2);
    sp_.parse(info, /*kernel_required=*/false, /*allow_dilations=*/true);
    if (group_ < 1) info.fail("attribute 'group' must be positive");
    output_padding_ = info.get_ints("output_padding");
    output_shape_ = info.get_ints("output_shape");
    has_output_shape_ = info.has_attr("output_shape");
    for (int64_t v : output_padding_)
      if (v < 0) info.fail("attribute 'output_padding' must be non-negative");
    for (int64_t v : output_shape_)
      if (v < 0) info.fail("attribute 'output_shape' must be non-negative");
    if (sp_.nd < 0 && info.has_attr("output_padding")) sp_.set_rank(output_padding_.size());
    if (sp_.nd < 0)
      if (const at::Tensor* w = info.constant_input(1)) sp_.set_rank(w->dim() - 2);
    if (sp_.nd >= 0) check_lengths(&info);
  }

  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    const at::Tensor& x = in[0];
    const at::Tensor& w = in[1];
    if (sp_.nd < 0) {
      sp_.set_rank(x.dim() - 2);
      check_lengths(nullptr);
    }
    check_ranks(x, w, sp_);
    const int64_t nd = sp_.nd;
    // Per axis: the ONNX output is the "full" transposed convolution (length F = s*(in-1) +
    // dilated kernel) cropped by `begin` in front and to length L, where positions past F
    // (output_padding, a larger output_shape) hold just the bias.
    bool post_adjust = false, bias_after = false;
    for (int64_t i = 0; i < nd; ++i) {
      int64_t s = sp_.strides[i], d = sp_.dilations[i];
      int64_t F = s * (x.size(2 + i) - 1) + sp_.eff_kernel(i, w.size(2 + i));
      int64_t op = output_padding_.empty() ? 0 : output_padding_[i];
      int64_t b, L;
      if (has_output_shape_ || sp_.auto_pad == AutoPad::kSameUpper ||
          sp_.auto_pad == AutoPad::kSameLower) {
        L = has_output_shape_ ? output_shape_[output_shape_.size() - nd + i] : x.size(2 + i) * s;
        int64_t total = F + op - L;
        b = sp_.auto_pad == AutoPad::kSameUpper ? floor_half(total) : total - floor_half(total);
      } else {
        b = sp_.auto_pad == AutoPad::kValid ? 0 : sp_.pads_begin[i];
        int64_t e = sp_.auto_pad == AutoPad::kValid ? 0 : sp_.pads_end[i];
        L = F + op - b - e;
      }
      if (L < 0) runtime_fail("ConvTranspose output would have a negative size");
      int64_t e_crop = F - b - L;  // negative: the output extends past F
      int64_t p = std::max<int64_t>(0, std::min(b, e_crop));
      int64_t ext = std::max<int64_t>(0, -e_crop);
      // libtorch accepts output_padding only below the stride or the dilation.
      int64_t op_native = (ext < s || ext < d) ? ext : 0;
      pad_[i] = p;
      op_[i] = op_native;
      int64_t native_len = F - 2 * p + op_native;
      int64_t front = -(b - p);                      // > 0 pads, < 0 crops
      int64_t back = L - (native_len - (b - p));     // likewise at the end
      adjust_[2 * (nd - 1 - i)] = front;
      adjust_[2 * (nd - 1 - i) + 1] = back;
      post_adjust = post_adjust || front != 0 || back != 0;
      bias_after = bias_after || front > 0 || back > 0;
    }
    at::Tensor bias = in.size() > 2 ? in[2] : at::Tensor();
    bool low = is_reduced_float(x);
    at::Tensor y = at::convolution(to_float_if(x, low), to_float_if(w, low),
                                   bias_after ? at::Tensor() : to_float_if(bias, low),
                                   sp_.strides, pad_, sp_.dilations, true, op_, group_);
    if (post_adjust) {
      y = at::constant_pad_nd(y, adjust_);
      if (bias_after && bias.defined()) {
        std::vector<int64_t> shape(nd + 2, 1);
        shape[1] = -1;
        y.add_(to_float_if(bias, low).view(shape));
      }
    }
    out[0] = low ? y.to(x.scalar_type()) : y;
  }

 private:
  void check_lengths(const NodeInfo* info) {
    auto bad = [&](const std::string& msg) {
      if (info) info->fail(msg);
      runtime_fail(msg);
    };
    if (!output_padding_.empty() && static_cast<int64_t>(output_padding_.size()) != sp_.nd)
      bad("attribute 'output_padding' must have one entry per spatial axis");
    if (has_output_shape_ && static_cast<int64_t>(output_shape_.size()) != sp_.nd &&
        static_cast<int64_t>(output_shape_.size()) != sp_.nd + 2)
      bad("attribute 'output_shape' must have one entry per spatial axis");
    for (size_t i = 0; i < output_padding_.size(); ++i)
      if (output_padding_[i] >= std::max(sp_.strides[i], sp_.dilations[i]))
        bad("attribute 'output_padding' must be smaller than the stride or the dilation of its axis");
    pad_.assign(sp_.nd, 0);
    op_.assign(sp_.nd, 0);
    adjust_.assign(2 * sp_.nd, 0);
  }

  Spatial sp_;
  int64_t group_;
  std::vector<int64_t> output_padding_, output_shape_;
  bool has_output_shape_ = false;
  std::vector<int64_t> pad_, op_, adjust_;
};

}  // namespace

const std::vector<OpRow>& conv_rows() {
  static const std::vector<OpRow> rows = {
      {"Conv", 1, 17, make_kernel<Conv>},
      {"ConvTranspose", 1, 17, make_kernel<ConvTranspose>},
  };
  return rows;
}

}  // namespace nn
}  // namespace mixq
