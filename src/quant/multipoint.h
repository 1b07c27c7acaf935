// Multipoint quantization on libtorch tensors (seed 001, METHODS.md): a layer's weight as its
// quantized value plus, for some output channels, extra low-bit points with real scales
// (QuantizedWeight::extra, quant/qmodel.h). The points are fitted by the scalar reference
// (quant/multipoint_ref.h) row by row; the method that decides which channels get them is
// quant/methods/multipoint.cpp.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "quant/plan.h"
#include "quant/qmodel.h"

namespace mixq {

// The zero point of the extra points' codes: 0 on a symmetric grid, 2^(bits-1) on an asymmetric one.
int64_t multipoint_zero_point(const QScheme& s);

// The weight as [C, K] float32 rows, C = shape[axis] (axis moved first, the rest in memory order),
// and back.
at::Tensor channel_rows(const at::Tensor& w, int64_t axis);
at::Tensor from_channel_rows(const at::Tensor& rows, at::IntArrayRef shape, int64_t axis);

// One extra point for every row of `rows` [C, K] on the grid of `s` (any granularity: a point has
// its own scale): scale [C], codes [C, K] (float integers) and the squared error each leaves
// (double [C]; equal to the row's squared norm where no point helps, the point then adds 0).
struct PointFit {
  at::Tensor scale, codes, err;
};
PointFit fit_points(const at::Tensor& rows, const QScheme& s, int steps = 100);
// What the points of `fit` add to the weight, as [C, K] rows: scale * (codes - z).
at::Tensor point_rows(const PointFit& fit, const QScheme& s);

// Appends the points of `fit` for the channels where take (bool [C]) is set: each goes to the
// channel's next free level (a new level when needed).
void add_points(QuantizedWeight& qw, const PointFit& fit, const at::Tensor& take);

// Level m's points, weight-shaped float32: (codes - z) * scale per channel, as DequantizeLinear
// computes it. dequantize_weight (quant/embed_quant.h) adds the levels to the main grid's value one
// after another, in level order, as the QDQ export's Add chain does.
at::Tensor extra_level_values(const QuantizedWeight& qw, size_t m);
// Extra points stored (used (level, channel) pairs), and per channel.
int64_t extra_point_count(const QuantizedWeight& qw);
std::vector<int64_t> extra_points_per_channel(const QuantizedWeight& qw);

// Writes every layer's extra points and the weight values they hold into the plan (0 where a
// weight has none) and recomputes its cost.
void record_extra_points(const QuantizedModel& qm, QuantPlan& plan);

}  // namespace mixq
