#include "quant/channel_bits.h"

#include <ATen/ATen.h>

#include <set>

#include "mixq/error.h"

namespace mixq {

namespace {

// Channels at `b`, as a bool tensor shaped like the per-channel parameters (broadcasts against w).
at::Tensor channel_mask(const QScheme& scheme, at::IntArrayRef shape, const std::vector<int>& bits, int b) {
  std::vector<uint8_t> m(bits.size());
  for (size_t c = 0; c < bits.size(); ++c) m[c] = bits[c] == b;
  at::Tensor t = at::tensor(at::ArrayRef<uint8_t>(m), at::kByte).to(at::kBool);
  return t.reshape(param_shape(scheme, std::vector<int64_t>(shape.begin(), shape.end())));
}

QScheme at_bits(QScheme s, int b) {
  s.bits = b;
  return s;
}

}  // namespace

void check_channel_bits(const QScheme& scheme, at::IntArrayRef shape, const std::vector<int>& bits,
                        const std::string& what) {
  MIXQ_CHECK(scheme.granularity == Granularity::kPerChannel, ErrorKind::kInvalidArgument, what,
             ": per-channel bits need a per_channel weight scheme, not ", scheme.str());
  const QLayout L = q_layout(scheme, std::vector<int64_t>(shape.begin(), shape.end()));
  MIXQ_CHECK(int64_t(bits.size()) == L.channels, ErrorKind::kInvalidArgument, what, ": ", bits.size(),
             " channel bit-widths for ", L.channels, " channels");
  for (int b : bits)
    MIXQ_CHECK(b >= 2 && b <= scheme.bits, ErrorKind::kInvalidArgument, what, ": channel bits ", b,
               " outside 2..", scheme.bits);
}

QParams channel_bits_params(const at::Tensor& w, const QScheme& scheme, const std::vector<int>& bits,
                            const RangeOptions& opts) {
  check_channel_bits(scheme, w.sizes(), bits, "channel_bits_params");
  QParams out;
  for (int b : std::set<int>(bits.begin(), bits.end())) {
    QParams p = weight_params(w, at_bits(scheme, b), opts);
    if (!out.scale.defined()) {
      out = p;
      continue;
    }
    at::Tensor m = channel_mask(scheme, w.sizes(), bits, b);
    out.scale = at::where(m, p.scale, out.scale);
    out.zero_point = at::where(m, p.zero_point, out.zero_point);
  }
  return out;
}

at::Tensor channel_bits_quantize(const at::Tensor& w, const QParams& p, const QScheme& scheme,
                                 const std::vector<int>& bits, const at::Tensor& noise) {
  check_channel_bits(scheme, w.sizes(), bits, "channel_bits_quantize");
  at::Tensor out;
  // One quantize per distinct width: the same division and rounding as quantize(), only the clamp
  // differs, so each channel's codes are what quantize() gives at its bits.
  for (int b : std::set<int>(bits.begin(), bits.end())) {
    at::Tensor q = quantize(w, p, at_bits(scheme, b), noise);
    out = out.defined() ? at::where(channel_mask(scheme, w.sizes(), bits, b), q, out) : q;
  }
  return out.contiguous();
}

at::Tensor channel_bits_fake_quantize(const at::Tensor& w, const QParams& p, const QScheme& scheme,
                                      const std::vector<int>& bits, const at::Tensor& noise) {
  return dequantize(channel_bits_quantize(w, p, scheme, bits, noise), p, scheme);
}

}  // namespace mixq
