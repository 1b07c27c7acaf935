// Quantization schemes and how a tensor maps onto their parameters. No libtorch here, so the
// scalar reference (quant/reference.h), the packer, the kernels and the runtime can include it.
//
// Notation (METHODS.md): b bits, scale s, zero point z, [qmin, qmax] the integer grid.
//   asymmetric: q = clip(round(x / s) + z, 0, 2^b - 1)            (unsigned grid)
//   symmetric:  q = clip(round(x / s), -2^(b-1), 2^(b-1) - 1)     (signed grid, z = 0)
//   dequantize: x~ = s * (q - z);  fake-quantize: DQ(Q(x)) in float.
// Every step is float32, in exactly this order (x / s is a division, never x * (1 / s)): the
// reference and the fast path agree bit for bit, and a kernel that multiplies by 1 / s must be
// tested with a one-code tolerance.
//
// Rounding of t = x / s: nearest = half to even (nearbyint), floor, ceil, stochastic =
// floor(t + u), u ~ U[0,1) supplied by the caller (one value per element, from a seeded
// generator). Because t + u is rounded to float, a stochastic code is floor(t) or floor(t) + 1.
//
// Granularity, on the 2-D view of a tensor W of rank >= 1 (axis a, C = shape[a]):
//   W2 = W with axis a moved first, reshaped to [C, K]; K = product of the other dims, which keep
//   their memory order. For an element at multi-index (i_0 .. i_{r-1}):
//     c = i_a,  k = (flat index of the other dims, row-major) = o * inner + n, where
//     outer = prod(shape[0:a]), inner = prod(shape[a+1:]), o / n the flat indices in them.
//   per-tensor:  one (s, z) for everything (any rank, also 0-d).
//   per-channel: one (s, z) per c.
//   per-group:   channel c is cut into G = ceil(K / group_size) groups of consecutive k:
//                group g holds k in [g * group_size, min((g + 1) * group_size, K)); the last group
//                is shorter when group_size does not divide K; group_size >= K gives G = 1.
//   Conv weight [O, I, kh, kw], axis 0: K = I * kh * kw, groups run over (i, y, x) row-major.
//   MatMul weight [K, N], axis 1: W2 = W^T, groups of consecutive rows of W within a column.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mixq/error.h"  // the kInvalidArgument the parsers and checks throw

namespace mixq {

enum class Granularity { kPerTensor, kPerChannel, kPerGroup };
enum class Rounding { kNearest, kFloor, kCeil, kStochastic };

const char* granularity_name(Granularity g);  // "per_tensor", "per_channel", "per_group"
const char* rounding_name(Rounding r);        // "nearest", "floor", "ceil", "stochastic"
Granularity parse_granularity(const std::string& s);  // throws kInvalidArgument
Rounding parse_rounding(const std::string& s);        // throws kInvalidArgument

struct QScheme {
  int bits = 8;                    // 2..16 (2..8 and 16 are the ones methods use and tests cover)
  bool symmetric = false;
  Granularity granularity = Granularity::kPerTensor;
  int64_t axis = 0;                // channel axis for per-channel / per-group (weights: output
                                   // channels); negative counts from the end; unused per-tensor
  int64_t group_size = 0;          // per-group: consecutive elements of K per group (>= 1)
  Rounding rounding = Rounding::kNearest;

  int64_t qmin() const { return symmetric ? -(int64_t(1) << (bits - 1)) : 0; }
  int64_t qmax() const { return symmetric ? (int64_t(1) << (bits - 1)) - 1 : (int64_t(1) << bits) - 1; }
  std::string str() const;  // "4-bit asym per_group(axis 0, 32) nearest"
  bool operator==(const QScheme& o) const {
    return bits == o.bits && symmetric == o.symmetric && granularity == o.granularity && axis == o.axis &&
           group_size == o.group_size && rounding == o.rounding;
  }
  bool operator!=(const QScheme& o) const { return !(*this == o); }
};

// Where the parameters of each element live (see the granularity notes above). Per-tensor is the
// case C = 1, K = numel, group_size = K; per-channel the case group_size = K (G = 1).
struct QLayout {
  int64_t outer = 1;       // prod(shape[0:axis])
  int64_t channels = 1;    // C
  int64_t inner = 1;       // prod(shape[axis+1:])
  int64_t k = 1;           // K = outer * inner
  int64_t group_size = 1;  // elements of K per parameter (per-channel: K)
  int64_t groups = 1;      // G = ceil(K / group_size)
  int64_t numel() const { return channels * k; }
  int64_t num_params() const { return channels * groups; }
  // Index into the row-major [C, G] parameter array of the element at row-major flat index i.
  int64_t param_index(int64_t i) const {
    int64_t n = i % inner, rest = i / inner;
    int64_t c = rest % channels, o = rest / channels;
    return c * groups + (o * inner + n) / group_size;
  }
};

// Checks `scheme` against a tensor of `shape` (bits, axis in range, group size >= 1) and returns
// the layout with the axis normalised. Throws kInvalidArgument naming the scheme and the shape.
QLayout q_layout(const QScheme& scheme, const std::vector<int64_t>& shape);

// The shape of QParams::scale / zero_point for a tensor of `shape` (see quant/scheme.h):
// per-tensor {}, per-channel {1, .., C, .., 1} (rank of `shape`, C on the axis), per-group {C, G}.
std::vector<int64_t> param_shape(const QScheme& scheme, const std::vector<int64_t>& shape);

}  // namespace mixq
