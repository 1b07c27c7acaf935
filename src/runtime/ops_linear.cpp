// Gemm and MatMul with a constant weight (quantized or float, through QLinear), float MatMul of two
// activations (attention), BatchNormalization; the weight and bias readers the convolutions share
// (ops_conv.cpp).
//
// Which weight form a layer keeps (integer path), measured with bench/runtime_kernels_bench
// (BM_LinearLowbit vs BM_LinearInt8, 256 x 1152 at 4 bits, one core; BENCHMARKS.md):
//   - Gemm / MatMul: low-bit (< 8-bit weights stay packed). Their GEMMs have batch (x tokens)
//     rows: 1-2 rows run 1.8-2.9x faster than int8 (int8's GEMV has one accumulator chain), 4-16
//     rows the same, 32-256 rows 0.4-5% slower. Large weights read b/8 of the bytes.
//   - Conv: int8 (ops_conv.cpp).
// The float path (16-bit activations, per-group weights) keeps every layer's quantized weight
// packed where its scales allow (QLinear), since the alternative is a float copy 4-16x larger.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/epilogue.h"
#include "kernels/sgemm.h"
#include "mixq/error.h"
#include "runtime/layer_weights.h"
#include "runtime/onednn.h"
#include "runtime/ops.h"
#include "runtime/qlinear.h"

namespace mixq::rt {

// The constant float weight of input `idx` when not quantized; kUnsupported when it is computed.
const std::vector<float>* float_weight(const BuildCtx& c, size_t idx, std::vector<int64_t>* dims) {
  if (c.qweight && idx < c.node.inputs.size() && c.node.inputs[idx] == c.qweight->tensor) {
    *dims = c.qweight->dims;
    return nullptr;
  }
  const pack::Tensor* t = c.const_input(idx);
  MIXQ_CHECK(t && t->dtype == ElemType::kFloat32, ErrorKind::kUnsupported, c.desc, ": input ", idx,
             " (the weight) must be a stored float tensor for the runtime");
  *dims = t->dims;
  return &t->f;
}

std::vector<float> bias_of(const BuildCtx& c, size_t idx, int64_t n, float beta) {
  std::vector<float> b(static_cast<size_t>(n), 0.0f);
  if (idx >= c.node.inputs.size() || c.node.inputs[idx].empty()) return b;
  const pack::Tensor* t = c.const_input(idx);
  MIXQ_CHECK(t && t->dtype == ElemType::kFloat32 && (t->numel() == n || t->numel() == 1), ErrorKind::kUnsupported,
             c.desc, ": the bias must be a stored float tensor of ", n, " values (or 1)");
  for (int64_t j = 0; j < n; ++j) b[j] = beta * t->f[t->numel() == 1 ? 0 : j];
  return b;
}

namespace {

// Gemm / MatMul with a constant weight: y = x W (+ bias), x [..., K].
class LinearOp : public Op {
 public:
  QLinear lin;
  bool gemm = false;
  bool int_path(std::string* why) const override { *why = lin.why_float; return lin.int_path; }
  bool ran_int() const override { return lin.int_path; }
  bool fuse_bias(const std::vector<float>& b) override {
    if (lin.onednn || static_cast<int64_t>(b.size()) != lin.n) return false;
    for (int64_t j = 0; j < lin.n; ++j) lin.bias[j] += b[j];
    return true;
  }
  void weight_info(std::string* kernel, int64_t* bytes) const override {
    *kernel = lin.kernel_name();
    *bytes = lin.weight_bytes();
  }
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx& ctx) override {
    const Tensor& x = *in[0];
    RT_CHECK(x.dtype == ElemType::kFloat32 && x.rank() >= 1 && x.shape.back() == lin.k && (!gemm || x.rank() == 2),
             this, "input ", shape_str(x.shape), " does not fit a weight with K = ", lin.k);
    const int64_t M = x.numel() / lin.k;
    last_macs = M * lin.n * lin.k;
    std::vector<int64_t> shape = x.shape;
    shape.back() = lin.n;
    Tensor y = output_floats(shape, ctx);
    if (lin.int_path) {
      const int64_t kp = lin.a_kp();
      std::vector<uint8_t> A(static_cast<size_t>(M * kp), 0);
      std::vector<int32_t> rsum(static_cast<size_t>(M)), scratch;
      // Codes and exact row sums, then the GEMM and the fused epilogue (zero-point terms, rescale;
      // kernels/epilogue.h: the same arithmetic as the convolutions' integer path). Every step is
      // row by row, so rows split over the threads once for all of them (at batch 64 a one-thread
      // prologue and epilogue held a transformer's MatMuls to 1.25x on 2 threads).
      const bool need_rsum = lin.needs_rsum();
      if (!lin.tile_epilogue) scratch.resize(static_cast<size_t>(M * lin.n));
      parallel_ranges(ctx.threads, M, lin.tile_epilogue ? lin.k : lin.k * (lin.n + 1), 16, [&](int64_t r0, int64_t r1) {
        if (kp == lin.k) {
          lin.quantize_act(x.f.data() + r0 * lin.k, (r1 - r0) * lin.k, A.data() + r0 * kp);
        } else {
          for (int64_t i = r0; i < r1; ++i) lin.quantize_act(x.f.data() + i * lin.k, lin.k, A.data() + i * kp);
        }
        if (need_rsum) kernels::row_sums_u8(A.data() + r0 * kp, r1 - r0, lin.k, kp, rsum.data() + r0, lin.isa);
        if (lin.tile_epilogue) return;
        int32_t* acc = scratch.data() + r0 * lin.n;
        lin.gemm(A.data() + r0 * kp, kp, r1 - r0, acc, 1);
        kernels::epilogue_f32(lin.epilogue_rows(acc, r1 - r0, lin.n, rsum.data() + r0), y.f.data() + r0 * lin.n,
                              lin.n, lin.isa);
      });
      if (lin.tile_epilogue) {  // in the GEMM's tiles: no int32 sums in memory
        lin.gemm_epilogue(A.data(), kp, M, lin.epilogue_rows(nullptr, M, lin.n, rsum.data()),
                          {nullptr, nullptr, y.f.data(), lin.n}, ctx.threads);
      }
    } else {
      std::vector<float> xf, scratch;
      const float* xp = x.f.data();
      if (lin.act_quant) {
        xf.resize(static_cast<size_t>(x.numel()));
        lin.fake_quant_act(x.f.data(), x.numel(), xf.data());
        xp = xf.data();
      }
      lin.run_float(xp, M, y.f.data(), lin.n, 1, ctx.threads, scratch);
    }
    out[0] = std::move(y);
  }
};

// MatMul of two run-time tensors (attention): batched, batch dims broadcast, rank >= 2 each.
class MatMulOp : public Op {
 public:
  kernels::Isa isa = kernels::Isa::kRef;
  bool onednn = false;  // sgemm on oneDNN (BuildCtx::dnnl)
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx& ctx) override {
    const Tensor &a = *in[0], &b = *in[1];
    RT_CHECK(a.dtype == ElemType::kFloat32 && b.dtype == ElemType::kFloat32 && a.rank() >= 2 && b.rank() >= 2, this,
             "needs float inputs of rank >= 2, got ", shape_str(a.shape), " and ", shape_str(b.shape));
    const int64_t M = a.shape[a.rank() - 2], K = a.shape.back(), N = b.shape.back();
    RT_CHECK(b.shape[b.rank() - 2] == K, this, "inner dims differ: ", shape_str(a.shape), " x ", shape_str(b.shape));
    const std::vector<int64_t> ab(a.shape.begin(), a.shape.end() - 2), bb(b.shape.begin(), b.shape.end() - 2);
    const size_t r = std::max(ab.size(), bb.size());
    std::vector<int64_t> batch(r), sa(r, 0), sb(r, 0);
    int64_t acc_a = 1, acc_b = 1;
    for (size_t i = r; i-- > 0;) {
      const int64_t da = i + ab.size() >= r ? ab[i + ab.size() - r] : 1, db = i + bb.size() >= r ? bb[i + bb.size() - r] : 1;
      RT_CHECK(da == db || da == 1 || db == 1, this, "batch dims do not broadcast: ", shape_str(a.shape), " x ",
               shape_str(b.shape));
      batch[i] = std::max(da, db);
      sa[i] = da == 1 ? 0 : acc_a;
      sb[i] = db == 1 ? 0 : acc_b;
      acc_a *= da;
      acc_b *= db;
    }
    std::vector<int64_t> shape = batch;
    shape.push_back(M);
    shape.push_back(N);
    Tensor y = output_floats(shape, ctx);
    int64_t nb = 1;
    for (int64_t d : batch) nb *= d;
    last_macs = nb * M * N * K;
    for (int64_t t = 0; t < nb; ++t) {
      int64_t rem = t, ia = 0, ib = 0;
      for (size_t i = r; i-- > 0;) {
        const int64_t idx = rem % batch[i];
        rem /= batch[i];
        ia += idx * sa[i];
        ib += idx * sb[i];
      }
      const float *pa = a.f.data() + ia * M * K, *pb = b.f.data() + ib * K * N;
      if (onednn) sgemm_onednn(false, false, M, N, K, pa, K, pb, N, y.f.data() + t * M * N, N, ctx.threads);
      else kernels::sgemm(pa, K, pb, N, y.f.data() + t * M * N, N, M, N, K, false, ctx.threads, isa);
    }
    out[0] = std::move(y);
  }
};

std::unique_ptr<Op> make_gemm(const BuildCtx& c) {
  MIXQ_CHECK(c.int_attr("transA", 0) == 0, ErrorKind::kUnsupported, c.desc, ": transA=1 is not supported");
  std::vector<int64_t> wd;
  const std::vector<float>* fw = float_weight(c, 1, &wd);
  MIXQ_CHECK(wd.size() == 2, ErrorKind::kInvalidModel, c.desc, ": weight ", shape_str(wd), " is not 2-D");
  const bool tb = c.int_attr("transB", 0) != 0;
  const int64_t N = tb ? wd[0] : wd[1], K = tb ? wd[1] : wd[0];
  const float alpha = c.float_attr("alpha", 1.0f), beta = c.float_attr("beta", 1.0f);
  MIXQ_CHECK(alpha == 1.0f, ErrorKind::kUnsupported, c.desc, ": alpha != 1 is not supported");
  auto op = std::make_unique<LinearOp>();
  op->gemm = true;
  op->lin.bias = bias_of(c, 2, N, beta);
  if (tb)
    op->lin.init(c.qweight, fw, N, K, [K](int64_t j, int64_t i) { return j * K + i; }, 0, 0, c.qact, c.isa, c.lowbit,
                 c.lowbit);
  else
    op->lin.init(c.qweight, fw, N, K, [N](int64_t j, int64_t i) { return i * N + j; }, 0, 1, c.qact, c.isa, c.lowbit,
                 c.lowbit);
  op->lin.release_w8();
  op->lin.allow_tile_epilogue(c.gemm_epi);
  if (c.dnnl && DnnlConv::available()) op->lin.use_onednn();
  return op;
}

std::unique_ptr<Op> make_matmul(const BuildCtx& c) {
  const bool const_w = (c.qweight && c.node.inputs.size() > 1 && c.node.inputs[1] == c.qweight->tensor) ||
                       (c.const_input(1) && c.const_input(1)->dims.size() == 2 && !c.const_input(0));
  if (!const_w) {
    MIXQ_CHECK(!c.qweight, ErrorKind::kUnsupported, c.desc, ": a quantized MatMul weight must be the second input");
    auto op = std::make_unique<MatMulOp>();
    op->isa = c.isa;
    op->onednn = c.dnnl;
    return op;
  }
  std::vector<int64_t> wd;
  const std::vector<float>* fw = float_weight(c, 1, &wd);
  MIXQ_CHECK(wd.size() == 2, ErrorKind::kUnsupported, c.desc, ": a quantized MatMul weight must be 2-D, got ",
             shape_str(wd));
  const int64_t K = wd[0], N = wd[1];
  auto op = std::make_unique<LinearOp>();
  op->lin.init(c.qweight, fw, N, K, [N](int64_t j, int64_t i) { return i * N + j; }, 0, 1, c.qact, c.isa, c.lowbit,
               c.lowbit);
  op->lin.release_w8();
  op->lin.allow_tile_epilogue(c.gemm_epi);
  if (c.dnnl && DnnlConv::available()) op->lin.use_onednn();
  return op;
}

class BatchNormOp : public Op {
 public:
  std::vector<float> mul, add;
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx&) override {
    Tensor y = *in[0];
    const int64_t C = static_cast<int64_t>(mul.size());
    RT_CHECK(y.rank() >= 2 && y.shape[1] == C, this, "input ", shape_str(y.shape), " has not ", C, " channels");
    int64_t inner = 1;
    for (int64_t d = 2; d < y.rank(); ++d) inner *= y.shape[d];
    for (int64_t b = 0; b < y.shape[0]; ++b)
      for (int64_t ch = 0; ch < C; ++ch) {
        float* p = y.f.data() + (b * C + ch) * inner;
        for (int64_t i = 0; i < inner; ++i) p[i] = p[i] * mul[ch] + add[ch];
      }
    out[0] = std::move(y);
  }
};

std::unique_ptr<Op> make_bn(const BuildCtx& c) {
  const pack::Tensor *s = c.const_input(1), *b = c.const_input(2), *m = c.const_input(3), *v = c.const_input(4);
  MIXQ_CHECK(s && b && m && v, ErrorKind::kUnsupported, c.desc, ": BatchNormalization needs stored parameters");
  MIXQ_CHECK(c.int_attr("training_mode", 0) == 0, ErrorKind::kUnsupported, c.desc,
             ": training_mode=1 (batch statistics); the runtime runs inference");
  const float eps = c.float_attr("epsilon", 1e-5f);
  auto op = std::make_unique<BatchNormOp>();
  const int64_t C = s->numel();
  MIXQ_CHECK(b->numel() == C && m->numel() == C && v->numel() == C, ErrorKind::kInvalidModel, c.desc,
             ": parameter sizes differ");
  for (int64_t i = 0; i < C; ++i) {
    const float k = s->f[i] / std::sqrt(v->f[i] + eps);
    op->mul.push_back(k);
    op->add.push_back(b->f[i] - m->f[i] * k);
  }
  return op;
}

}  // namespace

const std::vector<OpRow>& linear_rows() {
  static const std::vector<OpRow> rows = {
      {"Gemm", make_gemm, 2},
      {"MatMul", make_matmul, 2},
      {"BatchNormalization", make_bn, 5},
  };
  return rows;
}

}  // namespace mixq::rt
