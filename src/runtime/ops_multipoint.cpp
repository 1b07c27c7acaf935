// MultipointSum (mixq's own op, written by the packer for multipoint layers, pack/from_qmodel_mp.cpp):
// the layer ran with extra output channels, one per extra point; output channel c is the sum of
// the input channels p with dest[p] == c, added in input-channel order (the layer's own channel
// first, then its points level by level), then the fused Relu/Clip if any. Reads channels-last or
// NCHW floats, writes NCHW floats.
#include <algorithm>
#include <cmath>

#include "mixq/error.h"
#include "runtime/ops.h"

namespace mixq::rt {

namespace {

class MultipointSumOp : public Op {
 public:
  int64_t axis = 1;
  std::vector<int64_t> dest;
  int64_t channels = 0;  // outputs: max(dest) + 1
  kernels::ActClamp act;

  bool takes_nhwc(size_t, const std::vector<const Tensor*>&) const override { return true; }
  bool may_take_nhwc(size_t) const override { return true; }
  bool fuse_act(kernels::ActClamp a) override {
    act = a;
    return true;
  }

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx& ctx) override {
    const Tensor& x = *in[0];
    RT_CHECK(x.dtype == ElemType::kFloat32 && !x.is_codes(), this, "reads float tensors");
    const int64_t r = x.rank();
    const int64_t ax = axis < 0 ? axis + r : axis;
    RT_CHECK(ax >= 0 && ax < r && x.shape[ax] == static_cast<int64_t>(dest.size()), this, "input ",
             shape_str(x.shape), " does not have ", dest.size(), " channels on axis ", axis);
    std::vector<int64_t> shape = x.shape;
    shape[ax] = channels;
    Tensor y = output_floats(shape, ctx);
    std::fill(y.f.begin(), y.f.end(), 0.0f);
    const int64_t Cin = x.shape[ax];
    if (x.nhwc) {  // [N][H][W][Cin] -> [N][C][H][W]
      const int64_t N = x.shape[0], HW = x.shape[2] * x.shape[3];
      for (int64_t n = 0; n < N; ++n)
        for (int64_t p = 0; p < Cin; ++p) {
          const int64_t c = dest[static_cast<size_t>(p)];
          if (c < 0) continue;
          const float* src = x.f.data() + n * HW * Cin + p;
          float* dst = y.f.data() + (n * channels + c) * HW;
          for (int64_t i = 0; i < HW; ++i) dst[i] += src[i * Cin];
        }
    } else {
      int64_t outer = 1, inner = 1;
      for (int64_t d = 0; d < ax; ++d) outer *= x.shape[d];
      for (int64_t d = ax + 1; d < r; ++d) inner *= x.shape[d];
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t p = 0; p < Cin; ++p) {
          const int64_t c = dest[static_cast<size_t>(p)];
          if (c < 0) continue;
          const float* src = x.f.data() + (o * Cin + p) * inner;
          float* dst = y.f.data() + (o * channels + c) * inner;
          for (int64_t i = 0; i < inner; ++i) dst[i] += src[i];
        }
    }
    if (act.lo != -INFINITY || act.hi != INFINITY)
      for (float& v : y.f) v = std::min(act.hi, std::max(act.lo, v));
    out[0] = std::move(y);
  }
};

std::unique_ptr<Op> make_multipoint_sum(const BuildCtx& c) {
  auto op = std::make_unique<MultipointSumOp>();
  op->axis = c.int_attr("axis", 1);
  op->dest = c.ints_attr("dest");
  MIXQ_CHECK(!op->dest.empty(), ErrorKind::kInvalidModel, c.desc, ": MultipointSum needs its 'dest' channels");
  for (int64_t d : op->dest) {
    MIXQ_CHECK(d >= -1 && d < static_cast<int64_t>(op->dest.size()), ErrorKind::kInvalidModel, c.desc,
               ": 'dest' channel ", d, " outside [-1, ", op->dest.size(), ")");
    op->channels = std::max(op->channels, d + 1);
  }
  return op;
}

}  // namespace

const std::vector<OpRow>& multipoint_rows() {
  static const std::vector<OpRow> rows = {{"MultipointSum", make_multipoint_sum, 1}};
  return rows;
}

}  // namespace mixq::rt
