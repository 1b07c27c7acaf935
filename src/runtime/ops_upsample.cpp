// Upsampling operators of detection and segmentation heads: Resize (nearest and linear, the
// half_pixel / pytorch_half_pixel / align_corners / asymmetric coordinate modes, scales or sizes)
// and ConvTranspose (2-D, float: groups, strides, dilations, pads, output_padding, output_shape;
// a quantized weight is dequantized at load and its input fake-quantized, as the simulation does).
// Float32, NCHW; what they do not cover is a kUnsupported error at load naming the attribute.
#include <algorithm>
#include <cmath>

#include "kernels/quantize.h"
#include "mixq/error.h"
#include "runtime/ops.h"

namespace mixq::rt {

namespace {

enum class Coord { kHalfPixel, kPytorchHalfPixel, kAlignCorners, kAsymmetric };
enum class Nearest { kRoundPreferFloor, kRoundPreferCeil, kFloor, kCeil };

class ResizeOp : public Op {
 public:
  bool linear = false;
  Coord coord = Coord::kHalfPixel;
  Nearest nearest = Nearest::kRoundPreferFloor;

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx&) override {
    RT_CHECK(!in.empty() && in[0] && in[0]->dtype == ElemType::kFloat32, this, "needs a float32 input");
    const Tensor& x = *in[0];
    const int64_t r = x.rank();
    std::vector<int64_t> size(static_cast<size_t>(r));
    std::vector<double> scale(static_cast<size_t>(r), 1.0);
    // Resize-10: (X, scales); 11+: (X, roi, scales, sizes).
    const Tensor* scales = in.size() == 2 ? in[1] : in.size() > 2 && in[2] && in[2]->numel() > 0 ? in[2] : nullptr;
    const Tensor* sizes = in.size() > 3 && in[3] && in[3]->numel() > 0 ? in[3] : nullptr;
    RT_CHECK(scales || sizes, this, "needs scales or sizes");
    for (int64_t d = 0; d < r; ++d) {
      if (sizes) {
        RT_CHECK(sizes->dtype == ElemType::kInt64 && sizes->numel() == r, this, "sizes must be ", r, " int64 values");
        size[static_cast<size_t>(d)] = sizes->i[static_cast<size_t>(d)];
        scale[static_cast<size_t>(d)] = double(size[static_cast<size_t>(d)]) / double(x.shape[static_cast<size_t>(d)]);
      } else {
        RT_CHECK(scales->dtype == ElemType::kFloat32 && scales->numel() == r, this, "scales must be ", r, " floats");
        scale[static_cast<size_t>(d)] = scales->f[static_cast<size_t>(d)];
        size[static_cast<size_t>(d)] =
            static_cast<int64_t>(std::floor(double(x.shape[static_cast<size_t>(d)]) * scale[static_cast<size_t>(d)]));
      }
    }
    // Resize one axis at a time (separable; n-linear = 1-D linear along each resized axis).
    Tensor cur = x;
    for (int64_t d = 0; d < r; ++d) {
      if (size[static_cast<size_t>(d)] == cur.shape[static_cast<size_t>(d)] && scale[static_cast<size_t>(d)] == 1.0)
        continue;
      cur = resize_axis(cur, d, size[static_cast<size_t>(d)], scale[static_cast<size_t>(d)]);
    }
    out[0] = std::move(cur);
  }

 private:
  double source(int64_t o, int64_t in, int64_t outn, double s) const {
    switch (coord) {
      case Coord::kHalfPixel: return (double(o) + 0.5) / s - 0.5;
      case Coord::kPytorchHalfPixel: return outn > 1 ? (double(o) + 0.5) / s - 0.5 : 0.0;
      // ONNX's length_resized is in * scale (not rounded) when the sizes came from scales.
      case Coord::kAlignCorners: return outn == 1 ? 0.0 : double(o) * double(in - 1) / (double(in) * s - 1.0);
      case Coord::kAsymmetric: return double(o) / s;
    }
    return 0;
  }
  int64_t nearest_index(double v, int64_t in) const {
    double i;
    switch (nearest) {
      case Nearest::kRoundPreferFloor: i = v - std::floor(v) == 0.5 ? std::floor(v) : std::round(v); break;
      case Nearest::kRoundPreferCeil: i = v - std::floor(v) == 0.5 ? std::ceil(v) : std::round(v); break;
      case Nearest::kFloor: i = std::floor(v); break;
      default: i = std::ceil(v); break;
    }
    return std::clamp<int64_t>(static_cast<int64_t>(i), 0, in - 1);
  }
  Tensor resize_axis(const Tensor& x, int64_t d, int64_t outn, double s) const {
    std::vector<int64_t> shape = x.shape;
    const int64_t in = shape[static_cast<size_t>(d)];
    shape[static_cast<size_t>(d)] = outn;
    Tensor y = Tensor::floats(shape);
    int64_t outer = 1, inner = 1;
    for (int64_t k = 0; k < d; ++k) outer *= x.shape[static_cast<size_t>(k)];
    for (int64_t k = d + 1; k < x.rank(); ++k) inner *= x.shape[static_cast<size_t>(k)];
    std::vector<int64_t> i0(static_cast<size_t>(outn)), i1(static_cast<size_t>(outn));
    std::vector<float> w(static_cast<size_t>(outn), 0.0f);
    for (int64_t o = 0; o < outn; ++o) {
      const double v = source(o, in, outn, s);
      if (linear) {
        const double c = std::clamp(v, 0.0, double(in - 1));
        i0[static_cast<size_t>(o)] = static_cast<int64_t>(std::floor(c));
        i1[static_cast<size_t>(o)] = std::min(i0[static_cast<size_t>(o)] + 1, in - 1);
        w[static_cast<size_t>(o)] = static_cast<float>(c - std::floor(c));
      } else {
        i0[static_cast<size_t>(o)] = i1[static_cast<size_t>(o)] = nearest_index(v, in);
      }
    }
    for (int64_t a = 0; a < outer; ++a)
      for (int64_t o = 0; o < outn; ++o) {
        const float* p0 = x.f.data() + (a * in + i0[static_cast<size_t>(o)]) * inner;
        const float* p1 = x.f.data() + (a * in + i1[static_cast<size_t>(o)]) * inner;
        float* q = y.f.data() + (a * outn + o) * inner;
        const float wo = w[static_cast<size_t>(o)];
        if (wo == 0.0f) std::copy(p0, p0 + inner, q);
        else for (int64_t i = 0; i < inner; ++i) q[i] = p0[i] + wo * (p1[i] - p0[i]);
      }
    return y;
  }
};

class ConvTransposeOp : public Op {
 public:
  int64_t group = 1, Ci = 0, Cog = 0, kh = 1, kw = 1;
  int64_t sh = 1, sw = 1, dh = 1, dw = 1, opad_h = 0, opad_w = 0;
  int64_t pt = 0, pl = 0, pb = 0, pr = 0;
  std::vector<int64_t> out_shape;  // output_shape attribute (spatial), else empty
  bool same_upper = true;          // how output_shape's total padding splits
  std::vector<float> w, bias;
  const pack::QAct* qact = nullptr;

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx&) override {
    RT_CHECK(!in.empty() && in[0] && in[0]->dtype == ElemType::kFloat32 && in[0]->rank() == 4, this,
             "needs a float32 [N, C, H, W] input");
    const Tensor& x = *in[0];
    const int64_t N = x.shape[0], H = x.shape[2], W = x.shape[3];
    RT_CHECK(x.shape[1] == Ci, this, "input has ", x.shape[1], " channels, the weight ", Ci);
    int64_t t = pt, l = pl, b = pb, rr = pr;
    const int64_t fh = (kh - 1) * dh + 1, fw = (kw - 1) * dw + 1;
    if (!out_shape.empty()) {  // pads from the requested size
      const int64_t th = sh * (H - 1) + opad_h + fh - out_shape[0], tw = sw * (W - 1) + opad_w + fw - out_shape[1];
      t = same_upper ? th / 2 : th - th / 2, b = th - t;
      l = same_upper ? tw / 2 : tw - tw / 2, rr = tw - l;
    }
    const int64_t OH = sh * (H - 1) + opad_h + fh - t - b, OW = sw * (W - 1) + opad_w + fw - l - rr;
    RT_CHECK(OH > 0 && OW > 0, this, "output size ", OH, "x", OW);
    const int64_t Co = Cog * group, Cig = Ci / group;
    Tensor y = Tensor::floats({N, Co, OH, OW});
    std::vector<float> xq;
    const float* xs = x.f.data();
    if (qact) {  // the quantized input the simulation's QDQ graph feeds this layer (runtime's quantizer)
      xq.resize(x.f.size());
      kernels::fake_quantize_f32(xs, x.numel(), qact->scale, qact->zero_point, static_cast<float>(qact->qmin()),
                                 static_cast<float>(qact->qmax()), xq.data());
      xs = xq.data();
    }
    for (int64_t n = 0; n < N; ++n)
      for (int64_t g = 0; g < group; ++g)
        for (int64_t co = 0; co < Cog; ++co) {
          float* yo = y.f.data() + ((n * Co) + g * Cog + co) * OH * OW;
          std::fill(yo, yo + OH * OW, bias.empty() ? 0.0f : bias[static_cast<size_t>(g * Cog + co)]);
          for (int64_t ci = 0; ci < Cig; ++ci) {
            const float* xi = xs + ((n * Ci) + g * Cig + ci) * H * W;
            const float* wk = w.data() + ((g * Cig + ci) * Cog + co) * kh * kw;
            for (int64_t ih = 0; ih < H; ++ih)
              for (int64_t a = 0; a < kh; ++a) {
                const int64_t oh = ih * sh - t + a * dh;
                if (oh < 0 || oh >= OH) continue;
                for (int64_t iw = 0; iw < W; ++iw) {
                  const float v = xi[ih * W + iw];
                  for (int64_t c = 0; c < kw; ++c) {
                    const int64_t ow = iw * sw - l + c * dw;
                    if (ow >= 0 && ow < OW) yo[oh * OW + ow] += v * wk[a * kw + c];
                  }
                }
              }
          }
        }
    last_macs = N * Ci * H * W * Cog * kh * kw;
    out[0] = std::move(y);
  }
};

std::unique_ptr<Op> make_resize(const BuildCtx& c) {
  auto op = std::make_unique<ResizeOp>();
  const pack::Attr* m = c.node.attr("mode");
  const std::string mode = m ? m->s : "nearest";
  MIXQ_CHECK(mode == "nearest" || mode == "linear", ErrorKind::kUnsupported, c.desc, ": Resize mode '", mode,
             "' (the runtime has nearest and linear)");
  op->linear = mode == "linear";
  const pack::Attr* ct = c.node.attr("coordinate_transformation_mode");
  const std::string cm = ct ? ct->s : "half_pixel";
  if (cm == "half_pixel") op->coord = Coord::kHalfPixel;
  else if (cm == "pytorch_half_pixel") op->coord = Coord::kPytorchHalfPixel;
  else if (cm == "align_corners") op->coord = Coord::kAlignCorners;
  else if (cm == "asymmetric") op->coord = Coord::kAsymmetric;
  else throw Error(ErrorKind::kUnsupported, c.desc + ": coordinate_transformation_mode '" + cm + "'");
  const pack::Attr* nm = c.node.attr("nearest_mode");
  const std::string n = nm ? nm->s : "round_prefer_floor";
  if (n == "round_prefer_floor") op->nearest = Nearest::kRoundPreferFloor;
  else if (n == "round_prefer_ceil") op->nearest = Nearest::kRoundPreferCeil;
  else if (n == "floor") op->nearest = Nearest::kFloor;
  else if (n == "ceil") op->nearest = Nearest::kCeil;
  else throw Error(ErrorKind::kUnsupported, c.desc + ": nearest_mode '" + n + "'");
  MIXQ_CHECK(c.int_attr("antialias", 0) == 0 && !c.node.attr("axes") && !c.node.attr("keep_aspect_ratio_policy"),
             ErrorKind::kUnsupported, c.desc, ": Resize's antialias / axes / keep_aspect_ratio_policy (opset 18)");
  return op;
}

std::unique_ptr<Op> make_conv_transpose(const BuildCtx& c) {
  auto op = std::make_unique<ConvTransposeOp>();
  std::vector<int64_t> dims;
  if (c.qweight && c.node.inputs.size() > 1 && c.node.inputs[1] == c.qweight->tensor) {
    dims = c.qweight->dims;
    op->w = c.qweight->dequantize();
    op->qact = c.qact;
  } else {
    const pack::Tensor* t = c.const_input(1);
    MIXQ_CHECK(t && t->dtype == ElemType::kFloat32, ErrorKind::kUnsupported, c.desc,
               ": the weight must be a stored float tensor for the runtime");
    dims = t->dims;
    op->w = t->f;
  }
  MIXQ_CHECK(dims.size() == 4, ErrorKind::kUnsupported, c.desc, ": only 2-D ConvTranspose (a 4-D weight)");
  op->group = c.int_attr("group", 1);
  op->Ci = dims[0], op->Cog = dims[1], op->kh = dims[2], op->kw = dims[3];
  MIXQ_CHECK(op->group >= 1 && op->Ci % op->group == 0, ErrorKind::kInvalidModel, c.desc, ": group ", op->group,
             " does not divide ", op->Ci, " input channels");
  auto two = [&](const char* k, int64_t def) {
    std::vector<int64_t> v = c.ints_attr(k, {def, def});
    MIXQ_CHECK(v.size() == 2, ErrorKind::kUnsupported, c.desc, ": ", k, " must have 2 values");
    return v;
  };
  const auto s = two("strides", 1), d = two("dilations", 1), op_ = two("output_padding", 0);
  op->sh = s[0], op->sw = s[1], op->dh = d[0], op->dw = d[1], op->opad_h = op_[0], op->opad_w = op_[1];
  const std::vector<int64_t> p = c.ints_attr("pads", {0, 0, 0, 0});
  MIXQ_CHECK(p.size() == 4, ErrorKind::kUnsupported, c.desc, ": pads must have 4 values");
  op->pt = p[0], op->pl = p[1], op->pb = p[2], op->pr = p[3];
  const pack::Attr* ap = c.node.attr("auto_pad");
  const std::string auto_pad = ap ? ap->s : "NOTSET";
  op->out_shape = c.ints_attr("output_shape");
  if (op->out_shape.size() > 2) op->out_shape.erase(op->out_shape.begin(), op->out_shape.end() - 2);
  MIXQ_CHECK(auto_pad == "NOTSET" || (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER"), ErrorKind::kUnsupported,
             c.desc, ": auto_pad ", auto_pad);
  MIXQ_CHECK(auto_pad == "NOTSET" || !op->out_shape.empty(), ErrorKind::kUnsupported, c.desc, ": auto_pad ", auto_pad,
             " without output_shape (re-export with explicit pads)");
  op->same_upper = auto_pad != "SAME_LOWER";
  if (c.node.inputs.size() > 2 && !c.node.inputs[2].empty()) {
    const pack::Tensor* b = c.const_input(2);
    MIXQ_CHECK(b && b->dtype == ElemType::kFloat32 && b->numel() == op->Cog * op->group, ErrorKind::kUnsupported,
               c.desc, ": the bias must be a stored float tensor of one value per output channel");
    op->bias = b->f;
  }
  return op;
}

}  // namespace

const std::vector<OpRow>& upsample_rows() {
  static const std::vector<OpRow> rows = {
      {"Resize", make_resize, 1},
      {"ConvTranspose", make_conv_transpose, 2},
  };
  return rows;
}

}  // namespace mixq::rt
