// Kernel-wise (per output channel) weight bit-widths: each channel quantized on its own grid.
//
// A channel at b bits has its scale and zero point from its own range at b bits (exactly the
// row weight_params computes at b bits: per-channel parameters are independent), and its codes
// clamped to the b-bit grid. The scheme passed in is the layer's per-channel scheme at the
// maximum bits B of the layer: a b-bit grid ([0, 2^b - 1] or [-2^(b-1), 2^(b-1) - 1]) lies inside
// the B-bit one, so the codes, zero points and scales together are an ordinary B-bit per-channel
// quantizer whose dequantization s (q - z) is each channel's own: the QDQ export, the packer and
// the runtime read them unchanged (the packed codes then take B bits each, not b).
//
// `bits` has one entry per channel of scheme.axis, each 2..B. The scalar reference is
// ref::quantize_channel_bits / ref::params_channel_bits_minmax (quant/reference.h); the two
// agree bit for bit, and with every entry equal to B they are quantize() / weight_params().
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "quant/quantizer.h"

namespace mixq {

// Per-channel (s, z) with each channel's range estimated at its own bits (any weight range method).
QParams channel_bits_params(const at::Tensor& w, const QScheme& scheme, const std::vector<int>& bits,
                            const RangeOptions& opts);
// Codes: each channel clamped to its own grid. `noise` as quantize().
at::Tensor channel_bits_quantize(const at::Tensor& w, const QParams& p, const QScheme& scheme,
                                 const std::vector<int>& bits, const at::Tensor& noise = at::Tensor());
at::Tensor channel_bits_fake_quantize(const at::Tensor& w, const QParams& p, const QScheme& scheme,
                                      const std::vector<int>& bits, const at::Tensor& noise = at::Tensor());

// Checks `bits` against the scheme and the weight (per-channel, one entry per channel, 2..bits of
// the scheme); throws kInvalidArgument naming `what`.
void check_channel_bits(const QScheme& scheme, at::IntArrayRef shape, const std::vector<int>& bits,
                        const std::string& what);

}  // namespace mixq
