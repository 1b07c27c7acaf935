// The scalar reference of the row-wise embedding-table schemes (METHODS.md "Row-wise
// embedding-table quantization"; seed 001). No libtorch: the simulation (quant/embed_scheme.h),
// the exporter and any packed form are tested against these loops.
//
// A table is [rows, dim], row-major. Each row is quantized on its own:
//   row-wise affine: scale s = (max - min) / (2^b - 1), offset o = min, both stored as fp16, so
//     both are rounded to fp16 here too (what is simulated is what is stored);
//     q = clamp(nearbyint((x - o) / s), 0, 2^b - 1)  (s == 0: q = 0),  x~ = s * q + o  (float32,
//     one multiply then one add: DequantizeLinear(q, s, 0) followed by Add(o) computes exactly this).
//   greedy range search (FBGEMM's param_search_greedy): the range [min, max] is cut into 200 bins;
//     repeatedly move min up or max down by one bin, whichever gives the lower L2 error, until the
//     range has shrunk by 16%; keep the (min, max) with the lowest error seen, starting from plain
//     min-max, so the result is never worse than min-max (errors measured with the fp16-rounded
//     parameters, exactly as stored).
//   codebook: per-row k-means with 2^b centroids (stored as fp16), x~ = centroid[q]. Deterministic
//     init: centroids evenly spaced over [min, max] (the affine grid), then Lloyd iterations until
//     no assignment changes (at most `iters`); ties go to the lower centroid, an empty cluster
//     keeps its centroid.
#pragma once

#include <cstdint>

namespace mixq::ref {

// x rounded to the nearest IEEE fp16 value (half to even), returned as float32. Values beyond
// fp16's range saturate at +-65504 (a stored scale or offset must stay finite); NaN stays NaN.
float round_fp16(float x);
// The IEEE fp16 bits of an fp16-valued float (round_fp16's output: exact) and back; what the packed
// format stores.
uint16_t fp16_bits(float x);
float fp16_value(uint16_t h);

struct RowParams {
  float scale = 0;   // fp16-valued, >= 0
  float offset = 0;  // fp16-valued
};

// Min-max parameters of one row of `dim` values (dim >= 1).
RowParams rowwise_minmax(const float* row, int64_t dim, int bits);
// Greedy range search; `bins` > 0, `max_shrink` in [0, 1).
RowParams rowwise_greedy(const float* row, int64_t dim, int bits, int bins = 200, double max_shrink = 0.16);

inline int64_t rowwise_qmax(int bits) { return (int64_t(1) << bits) - 1; }
// One value's code and its dequantized value.
float rowwise_quantize_value(float x, RowParams p, int bits);
inline float rowwise_dequantize_value(float q, RowParams p) { return p.scale * q + p.offset; }
// Codes (float32 integers in [0, 2^b - 1]) of one row; `q` may alias `row`.
void rowwise_quantize_row(const float* row, int64_t dim, int bits, RowParams p, float* q);
// Sum of squared errors of a row under `p`, in double.
double rowwise_sq_error(const float* row, int64_t dim, int bits, RowParams p);

// Per-row k-means: writes 2^b fp16-valued centroids and dim codes (float32 integers).
void codebook_row(const float* row, int64_t dim, int bits, float* centroids, float* q, int iters = 25);
double codebook_sq_error(const float* row, int64_t dim, const float* centroids, const float* q);

}  // namespace mixq::ref
