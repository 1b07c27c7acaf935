#include "runtime/onednn.h"

#include <cfloat>
#include <cmath>
#include <string>
#include <unordered_map>
#include <oneapi/dnnl/dnnl.hpp>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "mixq/error.h"

namespace mixq::rt {

namespace {

using dnnl::memory;
using tag = memory::format_tag;

dnnl::engine& cpu_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

// Relu {0, inf} is oneDNN's relu; any other clamp its clip (infinite bounds as the float extremes).
void append_clamp(dnnl::post_ops& po, const kernels::ActClamp& a) {
  if (a.lo == 0 && std::isinf(a.hi) && a.hi > 0) {
    po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
  } else {
    const float lo = std::isinf(a.lo) ? -FLT_MAX : a.lo, hi = std::isinf(a.hi) ? FLT_MAX : a.hi;
    po.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, lo, hi);
  }
}

// Sets OpenMP's thread count for oneDNN's parallel regions (it reads omp_get_max_threads()) and
// restores the caller's on exit, so the rest of the runtime keeps its own setting.
class OmpThreads {
 public:
  explicit OmpThreads(int n) {
#ifdef _OPENMP
    prev_ = omp_get_max_threads();
    if (n != prev_) omp_set_num_threads(n);
#endif
    n_ = n;
  }
  ~OmpThreads() {
#ifdef _OPENMP
    if (n_ != prev_) omp_set_num_threads(prev_);
#endif
  }

 private:
  int prev_ = 0, n_ = 0;
};

// The index in `have` of the weights in the format `want` a primitive asked for, reordering the
// user's weights (`user` layout at `data`) into it the first time; where `want` is the user's own
// layout, the user's memory itself (the caller keeps it alive as long as `have`).
size_t weights_in(const memory::desc& want, const memory::desc& user, const float* data, std::vector<memory>& have,
                  dnnl::stream& stream) {
  for (size_t i = 0; i < have.size(); ++i)
    if (have[i].get_desc() == want) return i;
  memory src(user, cpu_engine(), const_cast<float*>(data));
  if (want == user) {
    have.push_back(src);
    return have.size() - 1;
  }
  memory packed(want, cpu_engine());
  dnnl::reorder(src, packed).execute(stream, src, packed);
  stream.wait();
  have.push_back(packed);
  return have.size() - 1;
}

}  // namespace

// [N][C][HW] <-> [N][HW][C] (to_cl: NCHW to channels-last).
static void transpose(const float* src, float* dst, int64_t N, int64_t C, int64_t HW, bool to_cl) {
  for (int64_t b = 0; b < N; ++b) {
    const float* s = src + b * C * HW;
    float* d = dst + b * C * HW;
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < HW; ++i) {
        if (to_cl) d[i * C + c] = s[c * HW + i];
        else d[c * HW + i] = s[i * C + c];
      }
  }
}

void sgemm_onednn(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* A, int64_t lda,
                  const float* B, int64_t ldb, float* C, int64_t ldc, int threads) {
  OmpThreads t(threads);
  const dnnl_status_t st =
      dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, 1.f, A, lda, B, ldb, 0.f, C, ldc);
  MIXQ_CHECK(st == dnnl_success, ErrorKind::kRuntime, "oneDNN sgemm failed (status ", static_cast<int>(st), ")");
}

struct DnnlConv::Impl {
  struct Prim {
    int64_t N, H, W;
    bool x_nhwc, y_nhwc;  // the caller's layouts
    bool src_cl, dst_cl;  // the primitive's (a copy converts where they differ)
    dnnl::convolution_forward conv;
    memory::desc src, dst;
    size_t weights;  // index into wmem
    memory::desc scratch;
  };
  std::vector<Prim> prims;
  std::vector<memory> wmem;  // the weights in each format a primitive asked for
  memory bias;
  dnnl::stream stream{cpu_engine()};
  std::vector<float> xt, yt;  // converted source / destination
};

DnnlConv::DnnlConv(const ConvGeom& g, std::vector<float> w, std::vector<float> bias)
    : g_(g), w_(std::move(w)), bias_(std::move(bias)), wp_(w_.data()), impl_(std::make_unique<Impl>()) {
  MIXQ_CHECK(static_cast<int64_t>(w_.size()) == g.O * g.Ig * g.kh * g.kw && static_cast<int64_t>(bias_.size()) == g.O,
             ErrorKind::kInternal, "DnnlConv: weight/bias sizes do not match the geometry");
  impl_->bias = memory({{g.O}, memory::data_type::f32, tag::x}, cpu_engine(), bias_.data());
}

DnnlConv::DnnlConv(const ConvGeom& g, const float* w, std::vector<float> bias)
    : g_(g), bias_(std::move(bias)), wp_(w), impl_(std::make_unique<Impl>()) {
  MIXQ_CHECK(w != nullptr && static_cast<int64_t>(bias_.size()) == g.O, ErrorKind::kInternal,
             "DnnlConv: no weights, or the bias size does not match the geometry");
  impl_->bias = memory({{g.O}, memory::data_type::f32, tag::x}, cpu_engine(), bias_.data());
}

DnnlConv::~DnnlConv() = default;

bool DnnlConv::available() {
  static const bool ok = [] {
    try {
      (void)cpu_engine();
      return true;
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return ok;
}

void DnnlConv::run(const float* x, bool x_nhwc, int64_t N, int64_t H, int64_t W, float* y, bool y_nhwc,
                   int threads) {
  Impl& im = *impl_;
  const ConvGeom& g = g_;
  const int64_t C = g.Ig * g.G, HW = H * W;
  const int64_t OH = (H + g.pt + g.pb - g.dh * (g.kh - 1) - 1) / g.sh + 1;
  const int64_t OW = (W + g.pl + g.pr - g.dw * (g.kw - 1) - 1) / g.sw + 1, OP = OH * OW;
  // One pixel or one channel: both layouts are the same memory.
  if (C == 1 || HW == 1) x_nhwc = true;
  if (g.O == 1 || OP == 1) y_nhwc = true;
  const Impl::Prim* p = nullptr;
  for (const Impl::Prim& q : im.prims)
    if (q.N == N && q.H == H && q.W == W && q.x_nhwc == x_nhwc && q.y_nhwc == y_nhwc) p = &q;
  if (!p) {
    const memory::dims wd = g.G > 1 ? memory::dims{g.G, g.O / g.G, g.Ig, g.kh, g.kw}
                                    : memory::dims{g.O, g.Ig, g.kh, g.kw};
    const memory::desc wany(wd, memory::data_type::f32, tag::any);
    dnnl::post_ops po;
    if (has_act_) append_clamp(po, act_);
    if (sum_) po.append_sum(1.f);
    if (has_post_) append_clamp(po, post_);
    dnnl::primitive_attr attr;
    attr.set_post_ops(po);
    // The scratchpad comes from the caller at execution (one buffer per thread, shared by every
    // convolution) instead of one held by each primitive for its lifetime: a model has a primitive
    // per layer and input size, and their scratchpads summed to ~90 MB on ResNet-50.
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    auto make = [&](bool src_cl, bool dst_cl) {
      const memory::desc src({N, C, H, W}, memory::data_type::f32, src_cl ? tag::nhwc : tag::nchw);
      const memory::desc dst({N, g.O, OH, OW}, memory::data_type::f32, dst_cl ? tag::nhwc : tag::nchw);
      const dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference,
                                              dnnl::algorithm::convolution_direct, src, wany, im.bias.get_desc(), dst,
                                              {g.sh, g.sw}, {g.dh - 1, g.dw - 1}, {g.pt, g.pl}, {g.pb, g.pr});
      return dnnl::convolution_forward::primitive_desc(d, attr, cpu_engine());
    };
    // The caller's layouts first; where oneDNN has only its reference kernel for them (it has no
    // JIT kernel mixing layouts), channels-last on both sides with copies.
    bool src_cl = x_nhwc, dst_cl = y_nhwc;
    dnnl::convolution_forward::primitive_desc pd = make(src_cl, dst_cl);
    if (std::string(pd.impl_info_str()).rfind("ref", 0) == 0 && !(src_cl && dst_cl)) {
      src_cl = dst_cl = true;
      pd = make(true, true);
    }
    const size_t wi = weights_in(pd.weights_desc(), {wd, memory::data_type::f32, g.G > 1 ? tag::goihw : tag::oihw},
                                 wp_, im.wmem, im.stream);
    im.prims.push_back(Impl::Prim{N, H, W, x_nhwc, y_nhwc, src_cl, dst_cl, dnnl::convolution_forward(pd),
                                  pd.src_desc(), pd.dst_desc(), wi, pd.scratchpad_desc()});
    p = &im.prims.back();
  }
  if (p->src_cl != x_nhwc) {
    im.xt.resize(static_cast<size_t>(N * C * HW));
    transpose(x, im.xt.data(), N, C, HW, p->src_cl);
    x = im.xt.data();
  }
  float* out = y;
  if (p->dst_cl != y_nhwc) {
    im.yt.resize(static_cast<size_t>(N * g.O * OP));
    if (sum_) transpose(y, im.yt.data(), N, g.O, OP, p->dst_cl);  // the residual operand
    out = im.yt.data();
  }
  memory src(p->src, cpu_engine(), const_cast<float*>(x));
  memory dst(p->dst, cpu_engine(), out);
  thread_local std::vector<uint8_t> scratch_buf;
  if (scratch_buf.size() < p->scratch.get_size()) scratch_buf.resize(p->scratch.get_size());
  memory scratch(p->scratch, cpu_engine(), scratch_buf.data());
  {
    OmpThreads t(threads);
    p->conv.execute(im.stream, {{DNNL_ARG_SRC, src},
                                {DNNL_ARG_WEIGHTS, im.wmem[p->weights]},
                                {DNNL_ARG_BIAS, im.bias},
                                {DNNL_ARG_DST, dst},
                                {DNNL_ARG_SCRATCHPAD, scratch}});
    im.stream.wait();
  }
  if (out != y) transpose(out, y, N, g.O, OP, y_nhwc);
}

struct DnnlLinear::Impl {
  struct Prim {
    int64_t m;
    dnnl::inner_product_forward ip;
    memory::desc src, dst;
    size_t weights;
  };
  std::vector<Prim> prims;
  std::vector<memory> wmem;  // the weights in each format a primitive asked for
  // Where new formats are reordered from: the caller's weights when borrowed; else `w`, our [n][k]
  // copy, until the first format exists, then that format (`w` is released unless it is that
  // format: on ViT-B the plain copy beside the packed one was 300 MB).
  std::vector<float> w;
  const float* user = nullptr;
  memory::desc user_desc;
  memory bias;
  std::vector<float> bias_data;
  bool has_bias = false;
  dnnl::primitive_attr attr;
  dnnl::stream stream{cpu_engine()};
};

DnnlLinear::DnnlLinear(const float* w, int64_t n, int64_t k, bool k_major, const float* bias,
                       const kernels::ActClamp* act, bool borrow)
    : n_(n), k_(k), impl_(std::make_unique<Impl>()) {
  Impl& im = *impl_;
  if (borrow) {
    im.user = w;
    im.user_desc = memory::desc({n, k}, memory::data_type::f32, k_major ? tag::ba : tag::ab);
  } else {
    im.w.resize(static_cast<size_t>(n * k));
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < k; ++i) im.w[j * k + i] = k_major ? w[i * n + j] : w[j * k + i];
  }
  if (bias) {
    im.bias_data.assign(bias, bias + n);
    im.bias = memory({{n}, memory::data_type::f32, tag::x}, cpu_engine(), im.bias_data.data());
    im.has_bias = true;
  }
  if (act) {
    dnnl::post_ops po;
    append_clamp(po, *act);
    im.attr.set_post_ops(po);
  }
}

DnnlLinear::~DnnlLinear() = default;

void DnnlLinear::run(const float* x, int64_t m, float* y, int threads) {
  Impl& im = *impl_;
  const Impl::Prim* p = nullptr;
  for (const Impl::Prim& q : im.prims)
    if (q.m == m) p = &q;
  if (!p) {
    const memory::desc src({m, k_}, memory::data_type::f32, tag::nc), dst({m, n_}, memory::data_type::f32, tag::nc);
    auto make = [&](const memory::desc& w) {
      const dnnl::inner_product_forward::desc d =
          im.has_bias ? dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_inference, src, w,
                                                          im.bias.get_desc(), dst)
                      : dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_inference, src, w, dst);
      return dnnl::inner_product_forward::primitive_desc(d, im.attr, cpu_engine());
    };
    // A later row count (the last, smaller batch of a pass) runs on the weights the first one got
    // where oneDNN has an implementation for them: a second format would be another weight-sized
    // copy (ViT-B quantize: 23 MB less at the peak). Else the format it prefers.
    dnnl::inner_product_forward::primitive_desc pd;
    bool fixed = false;
    if (!im.wmem.empty()) {
      try {
        pd = make(im.wmem.back().get_desc());
        fixed = true;
      } catch (const dnnl::error&) {
      }
    }
    if (!fixed) pd = make(memory::desc({n_, k_}, memory::data_type::f32, tag::any));
    memory::desc from = im.user_desc;
    const float* from_data = im.user;
    if (!im.user && im.wmem.empty()) {
      from = memory::desc({n_, k_}, memory::data_type::f32, tag::oi);
      from_data = im.w.data();
    } else if (!im.user) {
      from = im.wmem[0].get_desc();
      from_data = static_cast<const float*>(im.wmem[0].get_data_handle());
    }
    const size_t wi = weights_in(pd.weights_desc(), from, from_data, im.wmem, im.stream);
    if (!im.w.empty() && im.wmem[0].get_data_handle() != im.w.data()) std::vector<float>().swap(im.w);
    if (im.prims.size() >= 8) im.prims.erase(im.prims.begin());  // a few batch sizes at a time
    im.prims.push_back(Impl::Prim{m, dnnl::inner_product_forward(pd), pd.src_desc(), pd.dst_desc(), wi});
    p = &im.prims.back();
  }
  memory src(p->src, cpu_engine(), const_cast<float*>(x));
  memory dst(p->dst, cpu_engine(), y);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, im.wmem[p->weights]}, {DNNL_ARG_DST, dst}};
  if (im.has_bias) args.emplace(DNNL_ARG_BIAS, im.bias);
  OmpThreads t(threads);
  p->ip.execute(im.stream, args);
  im.stream.wait();
}

}  // namespace mixq::rt
