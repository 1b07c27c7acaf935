// MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool.
//
// libtorch's pools take symmetric padding of at most half the kernel; ONNX pads may be
// asymmetric (SAME_*, explicit) or larger. Those cases pad explicitly (-inf for max, zeros for
// average) and pool with padding 0. 1-D pools run as 2-D pools over a height-1 plane, so one
// code path (with divisor_override and indices) serves 1-D to 3-D.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <limits>

#include "exec/ops/nn_internal.h"
#include "kernels/maxpool.h"

namespace mixq {
namespace nn {
namespace {

// Geometry of one pooling call, recomputed per input shape (a few integer ops per axis).
class PoolBase : public OpKernel {
 protected:
  PoolBase(const NodeInfo& info, bool allow_dilations) {
    require_inputs(info, 1);
    sp_.parse(info, /*kernel_required=*/true, allow_dilations);
    ceil_mode_ = info.get_int("ceil_mode", 0) != 0;
    if (sp_.nd < 1 || sp_.nd > 3)
      info.unsupported(std::to_string(sp_.nd) + "-D pooling is not implemented (supported: 1-D to 3-D)");
    // SAME_* and VALID fix the output size themselves; ceil_mode cannot change it there.
    if (sp_.auto_pad != AutoPad::kNotSet) ceil_mode_ = false;
    const int64_t nd = sp_.nd, lift = nd == 1 ? 1 : 0;
    ak_.assign(nd + lift, 1);
    as_.assign(nd + lift, 1);
    ad_.assign(nd + lift, 1);
    ap_.assign(nd + lift, 0);
    for (int64_t i = 0; i < nd; ++i) {
      ak_[lift + i] = sp_.kernel[i];
      as_[lift + i] = sp_.strides[i];
      ad_[lift + i] = sp_.dilations[i];
    }
    zero_pad_.assign(nd + lift, 0);
    extra_.assign(2 * nd, 0);
    begin_.assign(nd, 0);
    out_.assign(nd, 0);
  }

  // Sets native_, ap_/extra_/begin_ and the expected output sizes out_ for input x.
  void plan(const at::Tensor& x) {
    const int64_t nd = sp_.nd, lift = nd == 1 ? 1 : 0;
    if (x.dim() != nd + 2)
      runtime_fail("expected a rank-" + std::to_string(nd + 2) + " input (kernel_shape has " +
                   std::to_string(nd) + " axes), got rank " + std::to_string(x.dim()));
    native_ = true;
    for (int64_t i = 0; i < nd; ++i) {
      int64_t in = x.size(2 + i), k = sp_.kernel[i], s = sp_.strides[i];
      int64_t b, e;
      sp_.pads_for(i, in, k, b, e);
      int64_t span = in + b + e - sp_.eff_kernel(i, k);
      if (span < 0) runtime_fail("the pooling window is larger than the padded input");
      int64_t o = (ceil_mode_ ? (span + s - 1) / s : span / s) + 1;
      // As libtorch (and later ONNX reference code): no window may start in the end padding.
      if (ceil_mode_ && (o - 1) * s >= in + b) --o;
      out_[i] = o;
      begin_[i] = b;
      extra_[2 * (nd - 1 - i)] = b;
      extra_[2 * (nd - 1 - i) + 1] = e;
      ap_[lift + i] = b;
      native_ = native_ && b == e && b <= k / 2;
    }
  }

  // x in the shape the ATen pools take (1-D lifted to 2-D), padded explicitly when needed.
  at::Tensor prepare_input(const at::Tensor& x, double pad_value) const {
    at::Tensor t = native_ ? x : at::constant_pad_nd(x, extra_, pad_value);
    return sp_.nd == 1 ? t.unsqueeze(2) : t;
  }
  const std::vector<int64_t>& pads() const { return native_ ? ap_ : zero_pad_; }

  // Back to the ONNX layout: drop the lifted axis, cut windows the explicit padding added.
  at::Tensor finish(at::Tensor y) const {
    if (sp_.nd == 1) y = y.squeeze(2);
    if (!native_)
      for (int64_t i = 0; i < sp_.nd; ++i)
        if (y.size(2 + i) > out_[i]) y = y.narrow(2 + i, 0, out_[i]);
    return y;
  }

  Spatial sp_;
  bool ceil_mode_ = false, native_ = true;
  // ATen-side kernel/stride/dilation/padding (with the lifted axis for 1-D).
  std::vector<int64_t> ak_, as_, ad_, ap_, zero_pad_;
  std::vector<int64_t> extra_, begin_, out_;
};

class MaxPool final : public PoolBase {
 public:
  explicit MaxPool(const NodeInfo& info) : PoolBase(info, /*allow_dilations=*/true) {
    int64_t so = info.get_int("storage_order", 0);
    if (so != 0 && so != 1) info.fail("attribute 'storage_order' must be 0 or 1");
    col_major_ = so == 1;
    want_indices_ = info.has_output(1);
  }

  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    const at::Tensor& x0 = in[0];
    plan(x0);
    // 2-D float NCHW inference: our kernel (libtorch 1.13's NCHW max pool is a scalar loop, ~9x
    // slower than its channels-last one; max is exact, so the values are the same).
    if (!want_indices_ && sp_.nd == 2 && x0.scalar_type() == at::kFloat && x0.device().is_cpu() &&
        x0.is_contiguous() && !(at::GradMode::is_enabled() && x0.requires_grad())) {
      kernels::MaxPool2d g;
      g.H = x0.size(2), g.W = x0.size(3), g.OH = out_[0], g.OW = out_[1];
      g.kh = sp_.kernel[0], g.kw = sp_.kernel[1], g.sh = sp_.strides[0], g.sw = sp_.strides[1];
      g.dh = sp_.dilations[0], g.dw = sp_.dilations[1], g.pt = begin_[0], g.pl = begin_[1];
      at::Tensor y = at::empty({x0.size(0), x0.size(1), g.OH, g.OW}, x0.options());
      kernels::maxpool2d_f32(x0.data_ptr<float>(), y.data_ptr<float>(), x0.size(0) * x0.size(1), g,
                             at::get_num_threads());
      out[0] = std::move(y);
      return;
    }
    // libtorch's CPU max pools are floating-point only; ONNX also allows int8/uint8.
    at::ScalarType st = x0.scalar_type();
    at::Tensor x = x0;
    if (st != at::kFloat && st != at::kDouble)
      x = x0.to(st == at::kInt || st == at::kLong ? at::kDouble : at::kFloat);
    at::Tensor xin = prepare_input(x, -std::numeric_limits<double>::infinity());
    at::Tensor y, idx;
    if (want_indices_) {
      std::tie(y, idx) = sp_.nd == 3 ? at::max_pool3d_with_indices(xin, ak_, as_, pads(), ad_, ceil_mode_)
                                     : at::max_pool2d_with_indices(xin, ak_, as_, pads(), ad_, ceil_mode_);
    } else {
      y = sp_.nd == 3 ? at::max_pool3d(xin, ak_, as_, pads(), ad_, ceil_mode_)
                      : at::max_pool2d(xin, ak_, as_, pads(), ad_, ceil_mode_);
    }
    y = finish(y);
    out[0] = y.scalar_type() == st ? y : y.to(st);
    if (want_indices_) out[1] = onnx_indices(finish(idx), x0);
  }

 private:
  // libtorch's indices are flat within one (n, c) plane of the (padded) input; ONNX's are flat
  // over the whole unpadded input, in row-major or (storage_order=1) column-major spatial order.
  at::Tensor onnx_indices(const at::Tensor& idx, const at::Tensor& x) const {
    const int64_t nd = sp_.nd;
    int64_t plane = 1;
    for (int64_t i = 0; i < nd; ++i) plane *= x.size(2 + i);
    at::Tensor spatial = idx;
    if (!native_ || col_major_) {
      // Decompose over the (padded) sizes, drop the begin pads, recompose in ONNX's order.
      std::vector<at::Tensor> coord(nd);
      at::Tensor rest = idx;
      for (int64_t i = nd - 1; i >= 0; --i) {
        int64_t len = x.size(2 + i) + (native_ ? 0 : extra_[2 * (nd - 1 - i)] + extra_[2 * (nd - 1 - i) + 1]);
        coord[i] = at::remainder(rest, len);
        if (!native_) coord[i].sub_(begin_[i]);
        rest = at::div(rest, len, "floor");
      }
      spatial = at::zeros_like(idx);
      int64_t mult = 1;
      for (int64_t j = 0; j < nd; ++j) {
        int64_t i = col_major_ ? j : nd - 1 - j;  // fastest-varying axis first
        spatial.add_(coord[i], mult);
        mult *= x.size(2 + i);
      }
    }
    const int64_t n = x.size(0), c = x.size(1);
    std::vector<int64_t> shape(nd + 2, 1);
    shape[0] = n;
    shape[1] = c;
    at::Tensor base = at::arange(n * c, idx.options()).mul_(plane).view(shape);
    return spatial + base;
  }

  bool col_major_ = false, want_indices_ = false;
};

class AveragePool final : public PoolBase {
 public:
  explicit AveragePool(const NodeInfo& info) : PoolBase(info, /*allow_dilations=*/false) {
    count_include_pad_ = info.get_int("count_include_pad", 0) != 0;
  }

  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    const at::Tensor& x0 = in[0];
    plan(x0);
    bool low = is_reduced_float(x0);
    at::Tensor xin = prepare_input(to_float_if(x0, low), 0.0);
    at::Tensor y;
    if (native_ || count_include_pad_) {
      // Native padding: libtorch's divisor rules match ONNX (pads counted or not; windows past
      // the padded end under ceil_mode clipped). Explicit zero padding then pool with
      // count_include_pad=true gives the same when pads count.
      y = pool(xin, count_include_pad_, c10::nullopt);
    } else {
      // Pads must not count but libtorch cannot exclude explicit padding: sum, then divide by
      // the number of real input elements in each window.
      y = pool(xin, true, 1).div_(count_for(x0));
    }
    y = finish(y);
    out[0] = low ? y.to(x0.scalar_type()) : y;
  }

 private:
  at::Tensor pool(const at::Tensor& t, bool include_pad, c10::optional<int64_t> divisor) const {
    return sp_.nd == 3 ? at::avg_pool3d(t, ak_, as_, pads(), ceil_mode_, include_pad, divisor)
                       : at::avg_pool2d(t, ak_, as_, pads(), ceil_mode_, include_pad, divisor);
  }

  // Window element counts over the padded layout, cached per spatial input shape.
  const at::Tensor& count_for(const at::Tensor& x) {
    std::vector<int64_t> key(x.sizes().begin() + 2, x.sizes().end());
    if (count_.defined() && key == count_key_ && count_.scalar_type() == x.scalar_type()) return count_;
    std::vector<int64_t> shape = {1, 1};
    shape.insert(shape.end(), key.begin(), key.end());
    at::Tensor ones = at::ones(shape, x.options().dtype(is_reduced_float(x) ? at::kFloat : x.scalar_type()));
    count_ = pool(prepare_input(ones, 0.0), true, 1);
    count_key_ = key;
    return count_;
  }

  bool count_include_pad_ = false;
  at::Tensor count_;
  std::vector<int64_t> count_key_;
};

// Global pools reduce every axis after N and C, keeping them as size 1.
// Global mean whose gradient keeps the input's memory format. libtorch's mean backward
// materialises an NCHW gradient even for a channels-last input; the ReLU backward before it then
// walks two layouts at once, ~8x slower (a fifth of a BRECQ iteration on the ResNet's last block).
struct GlobalMeanFn : torch::autograd::Function<GlobalMeanFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, std::vector<int64_t> dims) {
    ctx->save_for_backward({x});
    return at::mean(x, dims, true);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor x = ctx->get_saved_variables()[0];
    const double n = static_cast<double>(x.numel() / std::max<int64_t>(1, x.size(0) * x.size(1)));
    at::Tensor gx = at::empty_like(x);
    gx.copy_((grads[0] / n).expand(x.sizes()));
    return {gx, at::Tensor()};
  }
};

template <bool kMax>
class GlobalPool final : public OpKernel {
 public:
  explicit GlobalPool(const NodeInfo& info) { require_inputs(info, 1); }
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    const at::Tensor& x = in[0];
    if (x.dim() < 2) runtime_fail("expected an input of rank >= 2 (N x C x ...)");
    if (x.dim() == 2) {
      out[0] = x;
      return;
    }
    if (static_cast<int64_t>(dims_.size()) != x.dim() - 2) {
      dims_.clear();
      for (int64_t d = 2; d < x.dim(); ++d) dims_.push_back(d);
    }
    bool low = is_reduced_float(x);
    at::Tensor xf = to_float_if(x, low);
    const bool keep_layout = !kMax && xf.requires_grad() && at::GradMode::is_enabled() && xf.dim() == 4 &&
                             xf.is_contiguous(at::MemoryFormat::ChannelsLast) && !xf.is_contiguous();
    at::Tensor y = kMax ? at::amax(xf, dims_, true)
                        : (keep_layout ? GlobalMeanFn::apply(xf, dims_) : at::mean(xf, dims_, true));
    out[0] = low ? y.to(x.scalar_type()) : y;
  }

 private:
  std::vector<int64_t> dims_;
};

}  // namespace

const std::vector<OpRow>& pool_rows() {
  static const std::vector<OpRow> rows = {
      {"MaxPool", 1, 18, make_kernel<MaxPool>},
      {"AveragePool", 1, 18, make_kernel<AveragePool>},
      {"GlobalAveragePool", 1, 18, make_kernel<GlobalPool<false>>},
      {"GlobalMaxPool", 1, 18, make_kernel<GlobalPool<true>>},
  };
  return rows;
}

}  // namespace nn
}  // namespace mixq
