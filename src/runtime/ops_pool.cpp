// The runtime's 2-D pooling: MaxPool and AveragePool on float NCHW tensors (explicit pads,
// strides, dilations for MaxPool, ceil_mode, count_include_pad), as the ONNX spec defines them.
// Float only: between quantized layers the values are dequantized already. Channels-last inputs
// (runtime/forms.h) are pooled channels-last, each channel's taps in the same order as NCHW, so
// both give the same bits.
#include <algorithm>
#include <cmath>
#include <limits>

#include "mixq/error.h"
#include "kernels/maxpool.h"
#include "runtime/ops.h"

namespace mixq::rt {

namespace {

class Pool2dOp : public Op {
 public:
  bool is_max = true;
  bool ceil_mode = false, count_include_pad = false;
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1;
  int64_t pt = 0, pl = 0, pb = 0, pr = 0;

  int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t d, int64_t p0, int64_t p1) const {
    const int64_t span = in + p0 + p1 - ((k - 1) * d + 1);
    RT_CHECK(span >= 0, this, "the pooling window is larger than the padded input (", in, " + pads ", p0 + p1,
             " < window ", (k - 1) * d + 1, ")");
    int64_t n = ceil_mode ? (span + s - 1) / s + 1 : span / s + 1;
    // A last window that starts inside the right padding is dropped (ONNX / PyTorch rule).
    if (ceil_mode && (n - 1) * s >= in + p0) --n;
    return n;
  }

  bool may_take_nhwc(size_t idx) const override { return idx == 0; }
  bool takes_nhwc(size_t idx, const std::vector<const Tensor*>& in) const override {
    return idx == 0 && in[0] && in[0]->dtype == ElemType::kFloat32 && !in[0]->is_codes();
  }

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx& ctx) override {
    const Tensor& x = *in[0];
    RT_CHECK(x.rank() == 4 && x.dtype == ElemType::kFloat32, this, "needs a float [N,C,H,W] input, got ",
             shape_str(x.shape));
    const int64_t NC = x.shape[0] * x.shape[1], H = x.shape[2], W = x.shape[3];
    const int64_t OH = out_size(H, kh, sh, dh, pt, pb), OW = out_size(W, kw, sw, dw, pl, pr);
    Tensor y = output_floats({x.shape[0], x.shape[1], OH, OW}, ctx);  // (every element written)
    if (x.nhwc) {
      run_nhwc(x, OH, OW, y);
      out[0] = std::move(y);
      return;
    }
    if (is_max) {  // (the shared kernel: vectorised over output columns, planes over threads)
      kernels::MaxPool2d g;
      g.H = H, g.W = W, g.OH = OH, g.OW = OW, g.kh = kh, g.kw = kw, g.sh = sh, g.sw = sw;
      g.dh = dh, g.dw = dw, g.pt = pt, g.pl = pl;
      kernels::maxpool2d_f32(x.f.data(), y.f.data(), NC, g, ctx.threads);
      out[0] = std::move(y);
      return;
    }
    for (int64_t c = 0; c < NC; ++c) {  // AveragePool
      const float* src = x.f.data() + c * H * W;
      float* dst = y.f.data() + c * OH * OW;
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          const int64_t h0 = oh * sh - pt, w0 = ow * sw - pl;
          float acc = 0.0f;
          int64_t n = 0;
          for (int64_t i = 0; i < kh; ++i) {
            const int64_t h = h0 + i * dh;
            if (h < 0 || h >= H) continue;
            for (int64_t j = 0; j < kw; ++j) {
              const int64_t w = w0 + j * dw;
              if (w < 0 || w >= W) continue;
              acc += src[h * W + w];
              ++n;
            }
          }
          // count_include_pad counts padding cells but not the ceil_mode overhang past them.
          int64_t denom = n;
          if (count_include_pad) {
            const int64_t he = std::min(h0 + kh, H + pb), we = std::min(w0 + kw, W + pr);
            denom = (he - h0) * (we - w0);
          }
          dst[oh * OW + ow] = denom ? acc / static_cast<float>(denom) : 0.0f;
        }
    }
    out[0] = std::move(y);
  }

 private:
  void run_nhwc(const Tensor& x, int64_t OH, int64_t OW, Tensor& y) const {
    const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
    y.nhwc = OH * OW > 1;
    std::vector<float> acc(static_cast<size_t>(C));
    for (int64_t b = 0; b < N; ++b) {
      const float* src = x.f.data() + b * H * W * C;
      float* dst = y.f.data() + b * OH * OW * C;
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          const int64_t h0 = oh * sh - pt, w0 = ow * sw - pl;
          std::fill(acc.begin(), acc.end(), is_max ? -std::numeric_limits<float>::infinity() : 0.0f);
          int64_t n = 0;
          for (int64_t i = 0; i < kh; ++i) {
            const int64_t h = h0 + i * dh;
            if (h < 0 || h >= H) continue;
            for (int64_t j = 0; j < kw; ++j) {
              const int64_t w = w0 + j * dw;
              if (w < 0 || w >= W) continue;
              const float* v = src + (h * W + w) * C;
              if (is_max)
                for (int64_t c = 0; c < C; ++c) acc[c] = std::max(acc[c], v[c]);
              else
                for (int64_t c = 0; c < C; ++c) acc[c] += v[c];
              ++n;
            }
          }
          float* d = dst + (oh * OW + ow) * C;
          if (is_max) {
            std::copy(acc.begin(), acc.end(), d);
            continue;
          }
          int64_t denom = n;
          if (count_include_pad) {
            const int64_t he = std::min(h0 + kh, H + pb), we = std::min(w0 + kw, W + pr);
            denom = (he - h0) * (we - w0);
          }
          for (int64_t c = 0; c < C; ++c) d[c] = denom ? acc[c] / static_cast<float>(denom) : 0.0f;
        }
    }
  }
};

template <bool kMax>
std::unique_ptr<Op> make_pool(const BuildCtx& c) {
  auto op = std::make_unique<Pool2dOp>();
  op->is_max = kMax;
  const auto k = c.ints_attr("kernel_shape");
  MIXQ_CHECK(k.size() == 2, ErrorKind::kUnsupported, c.desc, ": only 2-D pooling is supported (kernel_shape of ",
             k.size(), " dims)");
  const std::string ap = c.node.attr("auto_pad") ? c.node.attr("auto_pad")->s : "NOTSET";
  MIXQ_CHECK(ap == "NOTSET" || ap.empty() || ap == "VALID", ErrorKind::kUnsupported, c.desc, ": auto_pad ", ap,
             " (re-export with explicit pads)");
  const auto st = c.ints_attr("strides", {1, 1}), di = c.ints_attr("dilations", {1, 1}),
             pads = c.ints_attr("pads", {0, 0, 0, 0});
  MIXQ_CHECK(st.size() == 2 && di.size() == 2 && pads.size() == 4, ErrorKind::kInvalidModel, c.desc,
             ": strides/dilations/pads do not match a 2-D kernel");
  check_window_2d(c, k, st, di, pads);
  MIXQ_CHECK(c.int_attr("storage_order", 0) == 0, ErrorKind::kUnsupported, c.desc, ": storage_order=1");
  MIXQ_CHECK(kMax || (di[0] == 1 && di[1] == 1), ErrorKind::kUnsupported, c.desc, ": dilated AveragePool");
  MIXQ_CHECK(c.node.outputs.size() < 2 || c.node.outputs[1].empty(), ErrorKind::kUnsupported, c.desc,
             ": the MaxPool Indices output is not supported by the runtime");
  op->kh = k[0], op->kw = k[1], op->sh = st[0], op->sw = st[1], op->dh = di[0], op->dw = di[1];
  op->pt = pads[0], op->pl = pads[1], op->pb = pads[2], op->pr = pads[3];
  op->ceil_mode = c.int_attr("ceil_mode", 0) != 0;
  op->count_include_pad = c.int_attr("count_include_pad", 0) != 0;
  return op;
}

}  // namespace

const std::vector<OpRow>& pool_rows() {
  static const std::vector<OpRow> rows = {
      {"MaxPool", make_pool<true>, 1},
      {"AveragePool", make_pool<false>, 1},
  };
  return rows;
}

}  // namespace mixq::rt
