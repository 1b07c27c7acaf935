#include "exec/dnnl_conv_cache.h"

#include <omp.h>

#include <atomic>

#include "core/log.h"

namespace mixq {
namespace {

std::atomic<int64_t> g_runs{0};

uint32_t version_of(const at::Tensor& t) { return t.defined() && !t.is_inference() ? t._version() : 0; }

bool same(const at::Tensor& a, const at::Tensor& b) { return a.defined() == b.defined() && (!a.defined() || a.is_same(b)); }

}  // namespace

int64_t DnnlConvCache::total_runs() { return g_runs.load(); }

bool DnnlConvCache::stale(const at::Tensor& w, const at::Tensor& bias, const kernels::ActClamp* act) const {
  if (!conv_ || !same(w, w_src_) || !same(bias, b_src_) || version_of(w) != w_version_ ||
      version_of(bias) != b_version_ || (act != nullptr) != has_act_)
    return true;
  return act && (act->lo != act_.lo || act->hi != act_.hi);
}

at::Tensor DnnlConvCache::run(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias,
                              const rt::ConvGeom& geom, const kernels::ActClamp* act) {
  if (refused_ || x.scalar_type() != at::kFloat || w.scalar_type() != at::kFloat || x.dim() != 4 || w.dim() != 4 ||
      !x.device().is_cpu() || !w.device().is_cpu() || (bias.defined() && bias.scalar_type() != at::kFloat) ||
      !rt::DnnlConv::available())
    return at::Tensor();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  rt::ConvGeom g = geom;
  g.O = w.size(0);
  g.Ig = w.size(1);
  g.kh = w.size(2);
  g.kw = w.size(3);
  if (g.G < 1 || g.Ig * g.G != C || g.O % g.G != 0 || (bias.defined() && bias.numel() != g.O)) return at::Tensor();
  const int64_t OH = (H + g.pt + g.pb - g.dh * (g.kh - 1) - 1) / g.sh + 1;
  const int64_t OW = (W + g.pl + g.pr - g.dw * (g.kw - 1) - 1) / g.sw + 1;
  if (OH <= 0 || OW <= 0 || N == 0) return at::Tensor();
  std::lock_guard<std::mutex> lock(mu_);
  try {
    if (stale(w, bias, act)) {
      // Made on a weight's first run, whatever follows: the path must not depend on the history
      // (a table measured from a cut and from whole-model runs must agree to the last bit, and
      // oneDNN's sums round differently from libtorch's).
      conv_.reset();
      w_plain_ = w.contiguous();  // w itself unless it is in another memory order
      std::vector<float> bv(static_cast<size_t>(g.O), 0.f);
      if (bias.defined()) {
        const at::Tensor bc = bias.contiguous();
        std::copy(bc.data_ptr<float>(), bc.data_ptr<float>() + g.O, bv.begin());
      }
      conv_ = std::make_unique<rt::DnnlConv>(g, static_cast<const float*>(w_plain_.data_ptr<float>()), std::move(bv));
      if (act) conv_->set_act(*act);
      w_src_ = w;
      b_src_ = bias;
      w_version_ = version_of(w);
      b_version_ = version_of(bias);
      has_act_ = act != nullptr;
      if (act) act_ = *act;
    }
    constexpr auto kCL = at::MemoryFormat::ChannelsLast;
    const at::Tensor xc = x.is_contiguous(kCL) ? x : x.contiguous(kCL);
    at::Tensor y = at::empty({N, g.O, OH, OW}, x.options().memory_format(kCL));
    conv_->run(xc.data_ptr<float>(), /*x_nhwc=*/true, N, H, W, y.data_ptr<float>(), /*y_nhwc=*/true,
               omp_in_parallel() ? 1 : omp_get_max_threads());
    g_runs.fetch_add(1);
    return y;
  } catch (const std::exception& e) {
    // oneDNN has no kernel for some geometry: libtorch (which may still reach oneDNN's reference
    // path) from now on. Not an error for the user, so it is a debug line.
    log::verbose(std::string("oneDNN convolution not used for this layer: ") + e.what());
    refused_ = true;
    conv_.reset();
    w_plain_ = at::Tensor();
    return at::Tensor();
  }
}

}  // namespace mixq
