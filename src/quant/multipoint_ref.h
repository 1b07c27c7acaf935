// Multipoint quantization's scalar reference (seed 001, METHODS.md "Multipoint quantization"):
// one extra point for one output channel. No libtorch: the libtorch side (quant/multipoint.h)
// calls these row by row, so the method and its tests share one definition.
//
// An extra point approximates a residual row r (what the channel's quantized weights still miss)
// by a * (q - z) with q integer codes on the layer's own grid [qmin, qmax] and z the grid's middle
// (multipoint_zero_point), so the point is signed on a symmetric and an asymmetric grid alike:
// q - z in [-2^(b-1), 2^(b-1) - 1]. The scale a comes from a 1-D search: a = t * max|r| / hi,
// hi = 2^(b-1) - 1 (bits >= 2), t = i / steps for i = 1..steps, codes
// q = clamp(nearbyint(r / a) + z, qmin, qmax); the a with the least squared error wins (the first
// one on ties). All float32, in this order.
#pragma once

#include <cstdint>

namespace mixq::ref {

struct PointGrid {
  int64_t qmin = 0, qmax = 15, zero = 8;  // codes and the zero point of an extra point
};
// The extra points' grid of a layer with `bits`-bit weights, symmetric or not.
PointGrid multipoint_grid(int bits, bool symmetric);

// Fits one point to r[0..k): writes codes[0..k) (float integers) and returns a > 0 and the squared
// error it leaves in *err. A zero row (or one no grid point improves: err >= ||r||^2) gets a = 1
// and every code z (the point adds nothing) with *err = ||r||^2.
float fit_point_row(const float* r, int64_t k, const PointGrid& g, int steps, float* codes, double* err);

}  // namespace mixq::ref
