// The scalar reference of every quantization scheme: plain loops over contiguous float32 arrays,
// no libtorch. It is the specification: the vectorised path (quant/quantizer.h), fake-quant
// simulation, the exporter, the packer and the kernels are all tested against it, and must agree
// with it bit for bit (same float32 operations in the same order, see quant/qscheme.h).
//
// Arrays: tensors are row-major, `shape` gives their dims (a 0-d tensor has shape {} and one
// element). Parameter arrays (scale, zero_point, min, max) hold QLayout::num_params() values in
// QParams order: per-tensor 1, per-channel C, per-group [C, G] row-major.
#pragma once

#include <cstdint>
#include <vector>

#include "quant/qscheme.h"

namespace mixq::ref {

// (s, z) of one range: the range is widened to include 0; symmetric s = max(-min, max) / qmax,
// z = 0; asymmetric s = (max - min) / (qmax - qmin), z = clamp(nearbyint(-min / s), qmin, qmax).
// s below FLT_MIN (a zero-width range) becomes 1. min, max must be finite.
void params_from_range(float min, float max, const QScheme& scheme, float* scale, float* zero_point);
void params_from_range(const float* min, const float* max, int64_t n, const QScheme& scheme, float* scale,
                       float* zero_point);

// Min and max of x per parameter (per tensor / channel / group), num_params() values each.
void minmax(const float* x, const std::vector<int64_t>& shape, const QScheme& scheme, float* min, float* max);

// One element: clamp(round(x / s) + z, qmin, qmax) with the scheme's rounding; `u` in [0, 1) is
// the stochastic-rounding noise (ignored by the other roundings).
float quantize_value(float x, float scale, float zero_point, const QScheme& scheme, float u = 0.0f);
inline float dequantize_value(float q, float scale, float zero_point) { return scale * (q - zero_point); }

// Whole tensors. `noise`: numel() values in [0, 1), required for stochastic rounding, else may be
// null. Output arrays have numel() elements and may alias the input.
void quantize(const float* x, const std::vector<int64_t>& shape, const QScheme& scheme, const float* scale,
              const float* zero_point, const float* noise, float* q);
void dequantize(const float* q, const std::vector<int64_t>& shape, const QScheme& scheme, const float* scale,
                const float* zero_point, float* x);
void fake_quantize(const float* x, const std::vector<int64_t>& shape, const QScheme& scheme, const float* scale,
                   const float* zero_point, const float* noise, float* y);

// Kernel-wise bits (quant/channel_bits.h): per-channel `scheme` at the layer's max bits, `bits`
// one width per channel. Min-max parameters of each channel at its bits, and codes clamped to
// each channel's grid; dequantize() with `scheme` then reads them.
void params_channel_bits_minmax(const float* x, const std::vector<int64_t>& shape, const QScheme& scheme,
                                const std::vector<int>& bits, float* scale, float* zero_point);
void quantize_channel_bits(const float* x, const std::vector<int64_t>& shape, const QScheme& scheme,
                           const std::vector<int>& bits, const float* scale, const float* zero_point,
                           const float* noise, float* q);

}  // namespace mixq::ref
