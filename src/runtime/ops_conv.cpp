// Conv on the runtime: the integer path (channels-last codes in, fused epilogue out: implicit
// GEMM for kxk, direct GEMM for 1x1, im2col from a framed copy for few-channel stems, depthwise on its
// own kernel; forms planned by runtime/forms.h) and the float path (im2col + GEMM), through QLinear.
// Weight forms: int8 for the GEMMs (one row per output pixel, where low-bit weights are 0.4-5% slower
// and the weights small; BENCHMARKS.md), int16 taps-major minus zero points for depthwise.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/depthwise_u8.h"
#include "kernels/epilogue.h"
#include "kernels/quantize.h"
#include "runtime/onednn.h"
#include "mixq/error.h"
#include "runtime/buffer_pool.h"
#include "runtime/layer_weights.h"
#include "runtime/ops.h"
#include "runtime/qlinear.h"

namespace mixq::rt {

namespace {

class ConvOp : public Op {
 public:
  int64_t O = 0, Ig = 0, G = 1, kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1;
  int64_t pt = 0, pl = 0, pb = 0, pr = 0;
  bool depthwise = false;
  std::vector<QLinear> lin;  // one per group (depthwise: one for all channels, k = kh*kw)
  // Integer path only (planned at load, runtime.cpp): a fused Relu/Clip, the form of the output
  // (NCHW float, NHWC float, or NHWC codes of the readers' quantizer `out_q`), the input quantizer
  // as codes arriving from the producer must match it.
  kernels::ActClamp act;
  bool fused_act = false;
  int sum_idx = -1;        // a fused residual Add: the input holding its other operand
  kernels::ActClamp post;  // and the Relu/Clip after it
  bool fused_post = false;
  Form out_form = Form::kNchw;
  kernels::OutQuant out_q, in_q;
  bool need_rsum = false;  // some group's weight zero points are not 0 (the epilogue reads row sums)
  bool framed = false;     // a few-channel stem: im2col rows from a copy framed by the padding
  // Float path on oneDNN (runtime/onednn.h) instead of im2col + the reference sgemm: takes the
  // same fusions and channels-last floats as the integer path (not codes).
  std::unique_ptr<DnnlConv> dnnl;

  // Whether this layer runs fused epilogues and channels-last values.
  bool fast() const { return lin[0].int_path || dnnl; }

  bool int_path(std::string* why) const override { *why = lin[0].why_float; return lin[0].int_path; }
  bool ran_int() const override { return lin[0].int_path; }
  void weight_info(std::string* kernel, int64_t* bytes) const override {
    *kernel = lin[0].kernel_name();
    *bytes = 0;
    for (const QLinear& l : lin) *bytes += l.weight_bytes();
    *bytes += static_cast<int64_t>((dw_w16.size() + dw_w2.size()) * sizeof(int16_t));
    if (dnnl) {
      *kernel = "f32-onednn";
      *bytes += O * Ig * kh * kw * static_cast<int64_t>(sizeof(float));
    }
  }
  bool may_take_nhwc(size_t idx) const override {
    return fast() && (idx == 0 || static_cast<int>(idx) == sum_idx);
  }
  bool takes_nhwc(size_t idx, const std::vector<const Tensor*>& in) const override {
    return may_take_nhwc(idx) && in[idx] && in[idx]->dtype == ElemType::kFloat32;
  }
  bool fuse_add(size_t idx) override {
    if (!fast() || sum_idx >= 0) return false;
    sum_idx = static_cast<int>(idx);
    if (dnnl) dnnl->set_sum(true);
    return true;
  }
  bool fuse_post_act(kernels::ActClamp a) override {
    if (sum_idx < 0 || fused_post) return false;
    post = a;
    fused_post = true;
    if (dnnl) dnnl->set_post(a);
    return true;
  }
  const kernels::OutQuant* codes_quant(size_t idx) const override {
    return idx == 0 && lin[0].int_path ? &in_q : nullptr;
  }
  bool fuse_act(kernels::ActClamp a) override {
    if (!fast() || fused_act) return false;
    act = a;
    fused_act = true;
    if (dnnl) dnnl->set_act(a);
    return true;
  }
  bool set_output_form(Form form, const kernels::OutQuant* q) override {
    if (form != Form::kNchw && !lin[0].int_path && !(dnnl && form == Form::kNhwc)) return false;
    out_form = form;
    if (q) out_q = *q;
    return true;
  }

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx& ctx) override {
    const Tensor& x = *in[0];
    RT_CHECK((x.dtype == ElemType::kFloat32 || x.is_codes()) && x.rank() == 4 && x.shape[1] == Ig * G, this,
             "input ", shape_str(x.shape), " does not fit weight with ", Ig * G, " input channels");
    const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
    const int64_t OH = (H + pt + pb - dh * (kh - 1) - 1) / sh + 1, OW = (W + pl + pr - dw * (kw - 1) - 1) / sw + 1;
    RT_CHECK(OH > 0 && OW > 0, this, "input ", shape_str(x.shape), " is smaller than the kernel");
    const QLinear& L0 = lin[0];
    last_macs = N * OH * OW * O * Ig * kh * kw;
    if (L0.int_path) {
      const Tensor* sum = sum_idx >= 0 ? in[static_cast<size_t>(sum_idx)] : nullptr;
      out[0] = run_int(x, sum, N, C, H, W, OH, OW, ctx);
      return;
    }
    if (dnnl) {
      out[0] = run_dnnl(x, sum_idx >= 0 ? in[static_cast<size_t>(sum_idx)] : nullptr, N, H, W, OH, OW, ctx);
      return;
    }
    const int64_t P = OH * OW, K = Ig * kh * kw;
    Tensor y = Tensor::floats({N, O, OH, OW});
    {
      std::vector<float> xf(static_cast<size_t>(x.numel()));
      L0.fake_quant_act(x.f.data(), x.numel(), xf.data());
      if (depthwise) {
        depthwise_float(xf.data(), N, C, H, W, OH, OW, y.f.data());
      } else {
        std::vector<float> A(static_cast<size_t>(P * K)), scratch, hwc(static_cast<size_t>(C * H * W));
        for (int64_t b = 0; b < N; ++b) {
          to_hwc(xf.data() + b * C * H * W, C, H * W, hwc.data());
          for (int64_t g = 0; g < G; ++g) {
            const float* src = hwc.data() + g * Ig;
            for (int64_t p = 0; p < P; ++p) im2col_row(src, C, H, W, p / OW, p % OW, 0.0f, A.data() + p * K);
            const int64_t Og = O / G;
            lin[g].run_float(A.data(), P, y.f.data() + (b * O + g * Og) * P, 1, P, ctx.threads, scratch);
          }
        }
      }
    }
    out[0] = std::move(y);
  }

 private:
  // Scratch reused across runs (a Model runs one batch at a time).
  std::vector<uint8_t> codes_, hwc_;
  struct Scratch {  // per thread
    std::vector<uint8_t> A;            // im2col rows
    std::vector<int32_t> rsum, acc, pix_sum;
    std::vector<uint32_t> box;         // pix_sum's integral image per group (box_row_sums)
    std::vector<float> fbuf;           // NCHW float output: one block of epilogue rows
    kernels::DwQuadRows dw_rows;       // the tap-quad depthwise kernel's interleaved input rows
  };
  std::vector<Scratch> scratch_;

  std::vector<float> xq_;  // the fake-quantized input of the oneDNN path

  Tensor run_dnnl(const Tensor& x, const Tensor* sum, int64_t N, int64_t H, int64_t W, int64_t OH, int64_t OW,
                  const RunCtx& ctx) {
    RT_CHECK(x.dtype == ElemType::kFloat32 && !x.f.empty(), this, "internal: the float path got activation codes");
    Tensor y = make_output(N, OH, OW, ctx);
    const int64_t P = OH * OW;
    if (sum) {  // the fused Add's other operand goes into the output first (oneDNN's sum post-op)
      RT_CHECK(sum->dtype == ElemType::kFloat32 && !sum->f.empty() && sum->shape == y.shape, this,
               "the fused Add's operand ", shape_str(sum->shape), " does not match the output ", shape_str(y.shape));
      if (sum->nhwc == y.nhwc || P == 1) {
        std::copy(sum->f.begin(), sum->f.end(), y.f.begin());
      } else {
        for (int64_t b = 0; b < N; ++b)
          for (int64_t c = 0; c < O; ++c)
            for (int64_t p = 0; p < P; ++p) {
              const int64_t nchw = (b * O + c) * P + p, nhwc = (b * P + p) * O + c;
              if (y.nhwc) y.f[nhwc] = sum->f[nchw];
              else y.f[nchw] = sum->f[nhwc];
            }
      }
    }
    const float* xp = x.f.data();
    if (lin[0].act_quant) {
      xq_.resize(x.f.size());
      lin[0].fake_quant_act(x.f.data(), x.numel(), xq_.data());
      xp = xq_.data();
    }
    dnnl->run(xp, x.nhwc, N, H, W, y.f.data(), y.nhwc, ctx.threads);
    return y;
  }

  // The input as channels-last codes of this layer's quantizer, all images.
  const uint8_t* input_codes(const Tensor& x, int64_t N, int64_t C, int64_t HW) {
    const QLinear& L0 = lin[0];
    if (x.has_codes()) {
      const bool same = x.q.scale == in_q.scale && x.q.zq == in_q.zq && x.q.lo == in_q.lo && x.q.hi == in_q.hi;
      RT_CHECK(x.nhwc && (same || !x.f.empty()), this, "internal: input codes of another quantizer");
      if (same) return x.u8.data();
    }
    codes_.resize(static_cast<size_t>(N * C * HW));
    if (x.nhwc || HW == 1 || C == 1) {
      L0.quantize_act(x.f.data(), x.numel(), codes_.data());
    } else {
      hwc_.resize(static_cast<size_t>(C * HW));
      for (int64_t b = 0; b < N; ++b) {
        L0.quantize_act(x.f.data() + b * C * HW, C * HW, hwc_.data());
        to_hwc(hwc_.data(), C, HW, codes_.data() + b * C * HW);
      }
    }
    return codes_.data();
  }

  // The output in this layer's form; every element is written by the caller (memory from the pool).
  Tensor make_output(int64_t N, int64_t OH, int64_t OW, const RunCtx& ctx) const {
    Tensor y;
    y.shape = {N, O, OH, OW};
    const bool cl = OH * OW > 1;  // one pixel: both layouts are the same memory
    const size_t n = static_cast<size_t>(N * O * OH * OW);
    auto floats = [&] { return ctx.pool ? ctx.pool->floats(n) : std::vector<float>(n); };
    if (out_form == Form::kCodes || out_form == Form::kNhwcAndCodes) {
      y.codes = true;
      y.nhwc = true;
      y.q = out_q;
      y.u8 = ctx.pool ? ctx.pool->bytes(n) : std::vector<uint8_t>(n);
      if (out_form == Form::kNhwcAndCodes) y.f = floats();
    } else {
      y.nhwc = out_form == Form::kNhwc && cl;
      y.f = floats();
    }
    return y;
  }

  // Rows [p0, p0 + e.m) of image b (output pixels; e.n channels from c0) through the epilogue into y.
  void emit(const kernels::EpiRows& e, Tensor& y, int64_t b, int64_t p0, int64_t P, int64_t c0, Scratch& sc) const {
    const kernels::Isa isa = lin[0].isa;
    if (out_form == Form::kCodes) {
      kernels::epilogue_u8(e, out_q, y.u8.data() + (b * P + p0) * O + c0, O, isa);
    } else if (out_form == Form::kNhwcAndCodes) {  // the floats, then the reader's quantize_u8 of them
      kernels::epilogue_f32(e, y.f.data() + (b * P + p0) * O + c0, O, isa);
      quantize_rows(y, (b * P + p0) * O + c0, e.m, e.n);
    } else if (y.nhwc || P == 1) {
      kernels::epilogue_f32(e, y.f.data() + (b * P + p0) * O + c0, O, isa);
    } else {  // NCHW: rows into a scratch block, then scattered with channel stride P
      std::vector<float>& fbuf = sc.fbuf;
      fbuf.resize(static_cast<size_t>(e.m * e.n));
      kernels::epilogue_f32(e, fbuf.data(), e.n, isa);
      for (int64_t j = 0; j < e.n; ++j) {
        float* dst = y.f.data() + (b * O + c0 + j) * P + p0;
        for (int64_t i = 0; i < e.m; ++i) dst[i] = fbuf[i * e.n + j];
      }
    }
  }

  Tensor run_int(const Tensor& x, const Tensor* sum, int64_t N, int64_t C, int64_t H, int64_t W, int64_t OH,
                 int64_t OW, const RunCtx& ctx) {
    const QLinear& L0 = lin[0];
    const int64_t P = OH * OW, K = Ig * kh * kw, HW = H * W;
    const uint8_t* codes = input_codes(x, N, C, HW);
    Tensor y = make_output(N, OH, OW, ctx);
    sum_ = nullptr;
    if (sum) {  // the fused Add's other operand, channels-last like the output
      RT_CHECK(sum->dtype == ElemType::kFloat32 && !sum->is_codes() && sum->shape == y.shape, this,
               "the fused Add's operand ", shape_str(sum->shape), " does not match the output ", shape_str(y.shape));
      sum_ = sum->f.data();
      if (!sum->nhwc && P > 1) {
        sumbuf_.resize(sum->f.size());
        for (int64_t b = 0; b < N; ++b)
          for (int64_t c = 0; c < O; ++c)
            for (int64_t p = 0; p < P; ++p) sumbuf_[(b * P + p) * O + c] = sum->f[(b * O + c) * P + p];
        sum_ = sumbuf_.data();
      }
    }
    // Work items are (image, block of output rows), spread over the threads, each with its own
    // scratch and single-threaded kernels: images in parallel when there are enough of them, and
    // an image split into row blocks when there are fewer images than threads and the layer is
    // worth it (about a million multiply-adds per block; waking a thread costs tens of us).
    const int64_t macs = P * K * O;
    int64_t blocks = 1;
    if (ctx.threads > 1 && N < ctx.threads)
      blocks = std::max<int64_t>(1, std::min<int64_t>((ctx.threads + N - 1) / N, macs >> 20));
    if (depthwise) blocks = std::min(blocks, OH);
    else blocks = std::min(blocks, std::max<int64_t>(1, P / 16));
    const int64_t items = N * blocks;
    const int nthreads = static_cast<int>(std::min<int64_t>(ctx.threads, items));
    scratch_.resize(static_cast<size_t>(nthreads));
    if (depthwise) {
      kernels::DepthwiseShape s;
      s.C = C; s.H = H; s.W = W; s.OH = OH; s.OW = OW;
      s.KH = kh; s.KW = kw; s.SH = sh; s.SW = sw; s.PT = pt; s.PL = pl; s.DH = dh; s.DW = dw;
#pragma omp parallel for num_threads(nthreads) schedule(static) if (nthreads > 1)
      for (int64_t it = 0; it < items; ++it) {
        Scratch& sc = scratch_[static_cast<size_t>(nthreads > 1 ? omp_thread() : 0)];
        const int64_t b = it / blocks, blk = it % blocks;
        sc.acc.resize(static_cast<size_t>(OW * C));
        sc.dw_rows.reset();  // (interleaved rows of this run's codes only)
        for (int64_t oy = OH * blk / blocks; oy < OH * (blk + 1) / blocks; ++oy) {
          kernels::EpiRows e;
          e.acc = sc.acc.data();
          e.m = OW;
          e.n = e.lda = C;
          e.scale = L0.out_scale.data();
          e.bias = L0.bias.data();
          e.act = act;
          set_sum(e, b, oy * OW, P, 0);
          if (!dw_q.w4.empty() && out_form == Form::kCodes) {  // the epilogue in registers, codes out
            kernels::depthwise_u8_row_quads_epi_avx512(codes + b * C * HW, dw_q, dw_zrow.data(), s, oy, sc.dw_rows,
                                                       e, out_q, y.u8.data() + (b * P + oy * OW) * O, O);
            continue;
          }
          if (!dw_q.w4.empty())
            kernels::depthwise_u8_acc_row_quads_avx512(codes + b * C * HW, dw_q, dw_zrow.data(), s, oy, sc.dw_rows,
                                                       sc.acc.data());
          else if (!dw_w2.empty())
            kernels::depthwise_u8_acc_row_pairs_avx2(codes + b * C * HW, dw_nz.data(), dw_w2.data(), dw_zrow.data(),
                                                     s, oy, sc.acc.data());
          else
            kernels::depthwise_u8_acc_row(codes + b * C * HW, L0.za, dw_w16.data(), s, oy, sc.acc.data(), L0.isa);
          emit(e, y, b, oy * OW, P, 0, sc);
        }
      }
      return y;
    }
    const int64_t kp = L0.a_kp(), Og = O / G;
    // 1x1, stride 1, no padding, one group: the channels-last image is the im2col matrix.
    const bool direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0 && pb == 0 && pr == 0 &&
                        G == 1 && kp == K;
    // Otherwise the implicit GEMM reads the taps in place where the kernel has it (AVX-512; the
    // rows are pixel indices built once per input size), else im2col rows are built.
    // A few-channel stem (`framed`, set at load): im2col rows from a copy of the codes framed by the
    // spatial padding (the code of 0.0), so that each kernel row of each output pixel is one
    // contiguous run of kw * C bytes copied without bounds checks (taps of 1-3 bytes made the
    // implicit GEMM spend its time resolving pointers, and padding channels to 4 tripled a grey
    // stem's GEMM).
    const bool stem = !direct && framed;
    const bool indirect = !stem && !direct && kernels::indirect_supported(lin[0].B, Ig);
    const int64_t seg = Ig;
    if (indirect) build_pix(H, W, OH, OW, seg);
    const int64_t Hp = H + pt + pb, Wp = W + pl + pr;
    if (stem) {
      build_pad(C);
      cpad_.resize(static_cast<size_t>(N * Hp * Wp * C));
      for (int64_t b = 0; b < N; ++b)
        for (int64_t y = 0; y < Hp; ++y) {
          uint8_t* d = cpad_.data() + (b * Hp + y) * Wp * C;
          const int64_t iy = y - pt;
          if (iy < 0 || iy >= H) {
            for (int64_t x = 0; x < Wp; ++x) std::memcpy(d + x * C, pad_.data(), static_cast<size_t>(C));
            continue;
          }
          for (int64_t x = 0; x < pl; ++x) std::memcpy(d + x * C, pad_.data(), static_cast<size_t>(C));
          std::memcpy(d + pl * C, codes + (b * H + iy) * W * C, static_cast<size_t>(W * C));
          for (int64_t x = pl + W; x < Wp; ++x) std::memcpy(d + x * C, pad_.data(), static_cast<size_t>(C));
        }
    }
    const uint8_t zpad = static_cast<uint8_t>(L0.za);
#pragma omp parallel for num_threads(nthreads) schedule(static) if (nthreads > 1)
    for (int64_t it = 0; it < items; ++it) {
      Scratch& sc = scratch_[static_cast<size_t>(nthreads > 1 ? omp_thread() : 0)];
      const int64_t b = it / blocks, blk = it % blocks, q0 = P * blk / blocks, q1 = P * (blk + 1) / blocks;
      const uint8_t* img = codes + b * C * HW;
      // Rows in chunks whose int32 sums (and im2col rows) stay in the first cache levels between
      // the GEMM writing them and the epilogue reading them (~32 KB of sums).
      const int64_t chunk = std::max<int64_t>(16, (int64_t(8192) / std::max<int64_t>(Og, 1)) / 4 * 4);
      if (indirect && need_rsum) {  // each input pixel's code sum per group, once per work item
        sc.pix_sum.resize(static_cast<size_t>(G * HW));
        for (int64_t g = 0; g < G; ++g)
          kernels::row_sums_u8(img + g * Ig, HW, Ig, C, sc.pix_sum.data() + g * HW, L0.isa);
        if (dh == 1 && dw == 1) build_box(sc.pix_sum.data(), H, W, sc.box);
      }
      for (int64_t p0 = q0; p0 < q1; p0 += chunk) {
      const int64_t m = std::min(chunk, q1 - p0);
      if (!direct && !indirect) sc.A.resize(static_cast<size_t>(m * kp));
      if (need_rsum) sc.rsum.resize(static_cast<size_t>(m));
      sc.acc.resize(static_cast<size_t>(m * Og));
      for (int64_t g = 0; g < G; ++g) {
        const QLinear& L = lin[g];
        if (indirect) {
          kernels::IndirectA ia;
          ia.base = img + g * Ig;
          ia.pix = pix_.data() + p0 * kh * kw;
          ia.taps = kh * kw;
          ia.seg = seg;
          ia.stride = C;
          ia.pad = pad_.data();
          if (need_rsum && dh == 1 && dw == 1)
            box_row_sums(sc.box.data() + g * (H + 1) * (W + 1), H, W, OW, p0, m, sc.rsum.data());
          else if (need_rsum)
            indirect_row_sums(ia, sc.pix_sum.data() + g * HW, m, sc.rsum.data());
          gemm_group(L, nullptr, 0, &ia, y, b, p0, m, P, g * Og, sc);
          continue;
        }
        const uint8_t* A = img + p0 * C;
        if (stem || !direct) {
          const uint8_t* src = stem ? cpad_.data() + b * Hp * Wp * C : img + g * Ig;
          for (int64_t i = 0, oy = p0 / OW, ox = p0 % OW; i < m; ++i) {
            uint8_t* row = sc.A.data() + i * kp;
            if (stem) {  // (the row's tail [K, kp) is never written: zero since A was allocated)
              const int64_t run = kw * C;
              const uint8_t* at = src + (oy * sh * Wp + ox * sw) * C;
              if (dw == 1) {
                for (int64_t ky = 0; ky < kh; ++ky) copy_small(row + ky * run, at + ky * dh * Wp * C, run);
              } else {  // dilated: tap by tap, still inside the frame
                for (int64_t ky = 0; ky < kh; ++ky)
                  for (int64_t kx = 0; kx < kw; ++kx)
                    copy_small(row + (ky * kw + kx) * C, at + (ky * dh * Wp + kx * dw) * C, C);
              }
            } else {
              im2col_row(src, C, H, W, oy, ox, zpad, row);
              std::fill(row + K, row + kp, uint8_t(0));
            }
            if (++ox == OW) {
              ox = 0;
              ++oy;
            }
          }
          A = sc.A.data();
        }
        if (need_rsum) kernels::row_sums_u8(A, m, K, kp, sc.rsum.data(), L.isa);
        gemm_group(L, A, kp, nullptr, y, b, p0, m, P, g * Og, sc);
      }
      }
    }
    return y;
  }

  // Group g's GEMM (rows A / lda, or the implicit rows `ia`) and epilogue for output rows
  // [p0, p0 + m): in the GEMM's tiles when the layer has that kernel and the output is rows of y
  // (codes, channels-last floats, or both: the reader's quantize_u8 of the floats then), else the
  // sums through sc.acc and emit().
  void gemm_group(const QLinear& L, const uint8_t* A, int64_t lda, const kernels::IndirectA* ia, Tensor& y,
                  int64_t b, int64_t p0, int64_t m, int64_t P, int64_t c0, Scratch& sc) const {
    const bool rows_of_y = out_form == Form::kCodes || out_form == Form::kNhwcAndCodes || y.nhwc || P == 1;
    if (!L.tile_epilogue || !rows_of_y) {
      if (ia) kernels::gemm_u8s8_indirect(*ia, m, L.B, sc.acc.data(), L.n, 1);
      else L.gemm(A, lda, m, sc.acc.data(), 1);
      epilogue_group(L, y, b, p0, m, P, c0, sc);
      return;
    }
    kernels::EpiRows e = L.epilogue_rows(nullptr, m, L.n, sc.rsum.data());
    e.act = act;
    set_sum(e, b, p0, P, c0);
    const int64_t at = (b * P + p0) * O + c0;
    kernels::EpiOut out;
    out.ldy = O;
    if (out_form == Form::kCodes) {
      out.q = &out_q;
      out.u8 = y.u8.data() + at;
    } else {
      out.f32 = y.f.data() + at;
    }
    if (ia) kernels::gemm_u8s8_indirect_epi(*ia, m, L.B, e, out);
    else L.gemm_epilogue(A, lda, m, e, out, 1);
    if (out_form == Form::kNhwcAndCodes) quantize_rows(y, at, m, L.n);
  }

  // The reader's codes of m rows of n floats of y from flat offset `at` (row stride O).
  void quantize_rows(Tensor& y, int64_t at, int64_t m, int64_t n) const {
    const kernels::Isa isa = lin[0].isa;
    const float* f = y.f.data() + at;
    uint8_t* u = y.u8.data() + at;
    if (n == O) {
      kernels::quantize_u8(f, m * O, out_q.scale, out_q.zq, out_q.lo, out_q.hi, u, isa);
    } else {
      for (int64_t i = 0; i < m; ++i)
        kernels::quantize_u8(f + i * O, n, out_q.scale, out_q.zq, out_q.lo, out_q.hi, u + i * O, isa);
    }
  }

  // Group g's m x Og corrected sums of output rows [p0, p0 + m) in sc.acc (zero-point terms in the
  // epilogue) into y.
  void epilogue_group(const QLinear& L, Tensor& y, int64_t b, int64_t p0, int64_t m, int64_t P, int64_t c0,
                      Scratch& sc) const {
    kernels::EpiRows e = L.epilogue_rows(sc.acc.data(), m, L.n, sc.rsum.data());
    e.act = act;
    set_sum(e, b, p0, P, c0);
    emit(e, y, b, p0, P, c0, sc);
  }

  void set_sum(kernels::EpiRows& e, int64_t b, int64_t p0, int64_t P, int64_t c0) const {
    if (!sum_) return;
    e.sum = sum_ + (b * P + p0) * O + c0;
    e.lds = O;
    e.post = post;
  }
  const float* sum_ = nullptr;
  std::vector<float> sumbuf_;

  // The implicit GEMM's rows: output pixel p's taps as input pixel indices (-1: padding), built
  // once per input size; and the padding segment (the code of 0.0).
  void build_pix(int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t seg) {
    if (pix_h_ == H && pix_w_ == W) return;
    const int64_t T = kh * kw;
    pix_.resize(static_cast<size_t>(OH * OW * T));
    for (int64_t oy = 0, p = 0; oy < OH; ++oy)
      for (int64_t ox = 0; ox < OW; ++ox, ++p)
        for (int64_t ky = 0; ky < kh; ++ky)
          for (int64_t kx = 0; kx < kw; ++kx) {
            const int64_t iy = oy * sh - pt + ky * dh, ix = ox * sw - pl + kx * dw;
            pix_[p * T + ky * kw + kx] =
                iy < 0 || iy >= H || ix < 0 || ix >= W ? -1 : static_cast<int32_t>(iy * W + ix);
          }
    build_pad(seg);
    pix_h_ = H;
    pix_w_ = W;
  }

  // The padding segment: the code of 0.0 in the Ig real channels, 0 in padding channels up to seg.
  void build_pad(int64_t seg) {
    if (static_cast<int64_t>(pad_.size()) == seg) return;
    pad_.assign(static_cast<size_t>(seg), 0);
    std::fill(pad_.begin(), pad_.begin() + Ig, static_cast<uint8_t>(lin[0].za));
  }

  // rsum[p] = the sum of output pixel p's K input codes, from the input pixels' code sums `pix_sum`.
  void indirect_row_sums(const kernels::IndirectA& ia, const int32_t* pix_sum, int64_t m, int32_t* rsum) const {
    int32_t pad_sum = 0;
    for (int64_t c = 0; c < ia.seg; ++c) pad_sum += ia.pad[c];
    for (int64_t p = 0; p < m; ++p) {
      int32_t s = 0;
      for (int64_t t = 0; t < ia.taps; ++t) {
        const int32_t px = ia.pix[p * ia.taps + t];
        s += px < 0 ? pad_sum : pix_sum[px];
      }
      rsum[p] = s;
    }
  }

  // The same row sums for undilated kernels from an integral image of the pixel sums: a window's
  // sum from 4 corners, plus the padding segment's sum for each tap outside the image (4 loads per
  // output pixel instead of one indexed load per tap: the gather loop took ~6% of a ResNet).
  // Unsigned arithmetic: the integral image may wrap, the differences are exact (rsum fits int32).
  void build_box(const int32_t* pix_sum, int64_t H, int64_t W, std::vector<uint32_t>& box) const {
    const int64_t W1 = W + 1, plane = (H + 1) * W1;
    box.assign(static_cast<size_t>(G * plane), 0u);
    for (int64_t g = 0; g < G; ++g) {
      uint32_t* I = box.data() + g * plane;
      const int32_t* S = pix_sum + g * H * W;
      for (int64_t y = 0; y < H; ++y) {
        uint32_t run = 0;
        for (int64_t x = 0; x < W; ++x) {
          run += static_cast<uint32_t>(S[y * W + x]);
          I[(y + 1) * W1 + x + 1] = I[y * W1 + x + 1] + run;
        }
      }
    }
  }
  void box_row_sums(const uint32_t* I, int64_t H, int64_t W, int64_t OW, int64_t p0, int64_t m, int32_t* rsum) const {
    int32_t pad_sum = 0;
    for (int64_t c = 0; c < Ig; ++c) pad_sum += pad_[static_cast<size_t>(c)];
    const int64_t W1 = W + 1, taps = kh * kw;
    for (int64_t i = 0, oy = p0 / OW, ox = p0 % OW; i < m; ++i) {
      const int64_t y0 = std::max<int64_t>(0, oy * sh - pt), y1 = std::min(H, oy * sh - pt + kh);
      const int64_t x0 = std::max<int64_t>(0, ox * sw - pl), x1 = std::min(W, ox * sw - pl + kw);
      uint32_t s = 0;
      int64_t inside = 0;
      if (y1 > y0 && x1 > x0) {
        s = I[y1 * W1 + x1] - I[y0 * W1 + x1] - I[y1 * W1 + x0] + I[y0 * W1 + x0];
        inside = (y1 - y0) * (x1 - x0);
      }
      rsum[i] = static_cast<int32_t>(s) + static_cast<int32_t>(taps - inside) * pad_sum;
      if (++ox == OW) {
        ox = 0;
        ++oy;
      }
    }
  }

  std::vector<int32_t> pix_;
  std::vector<uint8_t> pad_, cpad_;
  int64_t pix_h_ = -1, pix_w_ = -1;

  // [C][HW] -> [HW][C]: im2col then copies a tap's Ig channels as one contiguous run.
  // Blocked over pixels: a block's writes (kBlock * C elements) stay in L1 while every channel
  // adds its column, instead of one sweep over the whole image per channel (224x224 inputs).
  template <typename T>
  static void to_hwc(const T* src, int64_t C, int64_t HW, T* dst) {
    constexpr int64_t kBlock = 64;
    for (int64_t i0 = 0; i0 < HW; i0 += kBlock) {
      const int64_t i1 = std::min(HW, i0 + kBlock);
      for (int64_t c = 0; c < C; ++c) {
        const T* s = src + c * HW;
        for (int64_t i = i0; i < i1; ++i) dst[i * C + c] = s[i];
      }
    }
  }

  // n elements: 64-, 16- and 4-byte pieces of constant size (inlined vector / register moves) and a
  // byte tail, instead of a memcpy call per tap (the calls dominated the 16-64-channel
  // convolutions) or a byte loop (a grey stem's 12-byte kernel rows took 40% of its time).
  template <typename T>
  static void copy_run(T* dst, const T* src, int64_t n) {
    auto* d = reinterpret_cast<unsigned char*>(dst);
    const auto* s = reinterpret_cast<const unsigned char*>(src);
    const int64_t bytes = n * static_cast<int64_t>(sizeof(T));
    int64_t i = 0;
    for (; i + 64 <= bytes; i += 64) std::memcpy(d + i, s + i, 64);
    for (; i + 16 <= bytes; i += 16) std::memcpy(d + i, s + i, 16);
    for (; i + 4 <= bytes; i += 4) std::memcpy(d + i, s + i, 4);
    for (; i < bytes; ++i) d[i] = s[i];
  }

  // copy_run for the short runs of stems' kernel rows: the common sizes as constant-size moves.
  static void copy_small(uint8_t* dst, const uint8_t* src, int64_t n) {
    switch (n) {
      case 1: *dst = *src; return;
      case 3: std::memcpy(dst, src, 3); return;
      case 5: std::memcpy(dst, src, 5); return;
      case 7: std::memcpy(dst, src, 7); return;
      case 9: std::memcpy(dst, src, 9); return;
      case 15: std::memcpy(dst, src, 15); return;
      case 21: std::memcpy(dst, src, 21); return;
      default: copy_run(dst, src, n);
    }
  }

  // One im2col row from a channels-last image (src points at the group's first channel, C is the
  // row stride): the K = kh*kw*Ig inputs of output pixel (oy, ox) in (ky, kx, ci) order (the weight
  // rows are laid out to match at load), `pad` outside the image (the activation code of 0.0, or
  // 0.0f).
  template <typename T>
  void im2col_row(const T* src, int64_t C, int64_t H, int64_t W, int64_t oy, int64_t ox, T pad, T* a) const {
    // Members copied to locals: stores through a uint8_t* may alias anything, so the compiler
    // would otherwise reload every member after every byte written.
    const int64_t KW = kw, KH = kh, SH = sh, SW = sw, PT = pt, PL = pl, DH = dh, DW = dw, IG = Ig;
    const int64_t ix0 = ox * SW - PL;
    // One group, no dilation and the whole kernel row inside the image: the KW taps of a kernel
    // row are KW * C contiguous elements of the channels-last input, copied at once.
    const bool row_inside = IG == C && DW == 1 && ix0 >= 0 && ix0 + KW <= W;
    for (int64_t ky = 0; ky < KH; ++ky) {
      const int64_t iy = oy * SH - PT + ky * DH;
      if (row_inside && iy >= 0 && iy < H) {
        copy_run(a, src + (iy * W + ix0) * C, KW * IG);
        a += KW * IG;
        continue;
      }
      for (int64_t kx = 0; kx < KW; ++kx, a += IG) {
        const int64_t ix = ix0 + kx * DW;
        if (iy < 0 || iy >= H || ix < 0 || ix >= W) {
          std::fill(a, a + IG, pad);
        } else {
          copy_run(a, src + (iy * W + ix) * C, IG);
        }
      }
    }
  }


 public:
  std::vector<int16_t> dw_w16;  // depthwise int path: [kh*kw][C] weight codes minus their zero points
  kernels::DwQuads dw_q;        // the tap-quad form (AVX-512; empty: other ISAs)
  std::vector<uint8_t> dw_zrow;  // C codes of 0.0 (taps outside the image)
  std::vector<int16_t> dw_w2;    // the AVX2 tap-pair form: interleave_tap_pairs(dw_w16) (empty: other ISAs)
  std::vector<int32_t> dw_nz;    // its zero-point terms

 private:
  void depthwise_float(const float* xf, int64_t N, int64_t C, int64_t H, int64_t W, int64_t OH, int64_t OW,
                       float* y) const {
    const QLinear& L = lin[0];
    const int64_t T = kh * kw;
    for (int64_t b = 0; b < N; ++b)
      for (int64_t c = 0; c < C; ++c) {
        const float* src = xf + (b * C + c) * H * W;
        float* dst = y + (b * C + c) * OH * OW;
        for (int64_t oy = 0; oy < OH; ++oy)
          for (int64_t ox = 0; ox < OW; ++ox) {
            float acc = 0;
            for (int64_t ky = 0; ky < kh; ++ky) {
              const int64_t iy = oy * sh - pt + ky * dh;
              if (iy < 0 || iy >= H) continue;
              for (int64_t kx = 0; kx < kw; ++kx) {
                const int64_t ix = ox * sw - pl + kx * dw;
                if (ix < 0 || ix >= W) continue;
                acc += src[iy * W + ix] * L.wt[(ky * kw + kx) * C + c];
              }
            }
            dst[oy * OW + ox] = acc + L.bias[c];
          }
      }
    (void)T;
  }
};

std::unique_ptr<Op> make_conv(const BuildCtx& c) {
  auto op = std::make_unique<ConvOp>();
  std::vector<int64_t> wd;
  const std::vector<float>* fw = float_weight(c, 1, &wd);
  MIXQ_CHECK(wd.size() == 4, ErrorKind::kUnsupported, c.desc, ": only 2-D convolutions run in the runtime (weight ",
             shape_str(wd), ")");
  const std::string ap = c.node.attr("auto_pad") ? c.node.attr("auto_pad")->s : "NOTSET";
  MIXQ_CHECK(ap == "NOTSET" || ap.empty(), ErrorKind::kUnsupported, c.desc, ": auto_pad ", ap, " (use explicit pads)");
  op->O = wd[0];
  op->Ig = wd[1];
  op->kh = wd[2];
  op->kw = wd[3];
  op->G = c.int_attr("group", 1);
  const auto st = c.ints_attr("strides", {1, 1}), di = c.ints_attr("dilations", {1, 1}),
             pads = c.ints_attr("pads", {0, 0, 0, 0});
  MIXQ_CHECK(st.size() == 2 && di.size() == 2 && pads.size() == 4 && op->G >= 1 && op->O % op->G == 0 &&
                 st[0] > 0 && st[1] > 0 && di[0] > 0 && di[1] > 0,
             ErrorKind::kInvalidModel, c.desc, ": bad strides/dilations/pads/group");
  check_window_2d(c, {op->kh, op->kw}, st, di, pads);
  op->sh = st[0]; op->sw = st[1]; op->dh = di[0]; op->dw = di[1];
  op->pt = pads[0]; op->pl = pads[1]; op->pb = pads[2]; op->pr = pads[3];
  const std::vector<float> bias = bias_of(c, 2, op->O);
  const int64_t Og = op->O / op->G, K = op->Ig * op->kh * op->kw;
  op->depthwise = op->Ig == 1 && Og == 1 && op->G > 1 && op->kh * op->kw <= 64;
  if (op->depthwise) {
    QLinear L;
    L.bias = bias;
    L.init(c.qweight, fw, op->O, K, [K](int64_t j, int64_t i) { return j * K + i; }, 0, 0, c.qact, c.isa);
    if (L.int_path) {
      op->dw_w16.resize(static_cast<size_t>(K * op->O));
      for (int64_t ch = 0; ch < op->O; ++ch)
        for (int64_t t = 0; t < K; ++t)
          op->dw_w16[t * op->O + ch] = static_cast<int16_t>(int32_t(L.w8[ch * K + t]) - L.zw[ch]);
      L.release_w8();
      L.B = kernels::PackedB{};  // the GEMM form: not read by the depthwise kernel
      if (c.isa == kernels::Isa::kAvx512 || c.isa == kernels::Isa::kAvx2)
        op->dw_zrow.assign(static_cast<size_t>(op->O), static_cast<uint8_t>(L.za));
      if (c.isa == kernels::Isa::kAvx512) {
        kernels::DepthwiseShape ks;
        ks.C = op->O; ks.KH = op->kh; ks.KW = op->kw;
        op->dw_q = kernels::pack_dw_quads(op->dw_w16.data(), ks, L.za);
      } else if (c.isa == kernels::Isa::kAvx2) {
        op->dw_w2 = kernels::interleave_tap_pairs(op->dw_w16.data(), K, op->O);
        op->dw_nz = kernels::tap_pair_zero_terms(op->dw_w2.data(), K, op->O, L.za);
        std::vector<int16_t>().swap(op->dw_w16);  // (only the other ISAs' kernel reads it)
      }
    }
    op->lin.push_back(std::move(L));
  } else {
    for (int64_t g = 0; g < op->G; ++g) {
      QLinear L;
      L.bias.assign(bias.begin() + g * Og, bias.begin() + (g + 1) * Og);
      // Row i of the im2col matrix is (ky, kx, ci); the stored weight is [O][ci][ky][kx].
      const int64_t Ig = op->Ig, T = op->kh * op->kw;
      L.init(c.qweight, fw, Og, K,
             [K, g, Og, Ig, T](int64_t j, int64_t i) { return (g * Og + j) * K + (i % Ig) * T + i / Ig; }, g * Og, 0,
             c.qact, c.isa, /*lowbit_int=*/false, /*lowbit_float=*/c.lowbit);
      // A few input channels that are not whole 4-byte groups (an RGB or grey stem): im2col from
      // a framed copy (run_int) instead of the implicit GEMM.
      op->framed = op->G == 1 && L.int_path && Ig % 4 != 0 && Ig <= 16;
      L.release_w8();
      L.allow_tile_epilogue(c.gemm_epi);
      op->lin.push_back(std::move(L));
    }
  }
  // oneDNN for float layers, except those whose low-bit weights stay packed (a quantized weight
  // with a float-path activation: kept at its bits, as the plan's size promises).
  if (c.dnnl && !op->lin[0].int_path && !op->lin[0].float_lowbit && DnnlConv::available()) {
    ConvGeom g{op->O, op->Ig, op->G, op->kh, op->kw, op->sh, op->sw, op->dh, op->dw, op->pt, op->pl, op->pb, op->pr};
    op->dnnl = std::make_unique<DnnlConv>(g, c.qweight ? c.qweight->dequantize() : *fw, bias);
    for (QLinear& L : op->lin) std::vector<float>().swap(L.wt);  // the reference path's copy is not read
  }
  const QLinear& L0 = op->lin[0];
  op->in_q = kernels::OutQuant{L0.sa, static_cast<float>(L0.za + L0.aqmin), static_cast<float>(L0.aqmin),
                               static_cast<float>(L0.aqmax)};
  for (const QLinear& L : op->lin) op->need_rsum = op->need_rsum || (L.int_path && !op->depthwise && L.needs_rsum());
  return op;
}

}  // namespace

const std::vector<OpRow>& conv_rows() {
  static const std::vector<OpRow> rows = {
      {"Conv", make_conv, 2},
  };
  return rows;
}

}  // namespace mixq::rt
