// Scaled dot-product attention on float tensors, one pass per (batch, head):
//   O[b,h] = softmax_rows(S) V[b,h],   S = Q[b,h] K[b,h] * scale   (or / scale: `divide`)
// the MatMul -> Mul|Div -> Softmax(last axis) -> MatMul chain that transformer exports write.
// The scores live in one row buffer per thread (lk floats) instead of a [b, h, lq, lk] tensor
// written and read three times, and the small per-head products (a ViT's 49 x 16 x 49) run as
// vector loops over the row instead of one BLAS call each. Softmax is the runtime's own: max
// subtracted, kernels::exp_f32, each value divided by the row sum. No libtorch.
//
// Operands are strided views (any layout: the chain's inputs are often Transposes), element
// (b, h, r, c) at p[b*sb + h*sh + r*sr + c*sc]:
//   q: [batch, heads, lq, d]   k: [batch, heads, d, lk] (K already transposed, MatMul's B)
//   v: [batch, heads, lk, dv]  o: [batch, heads, lq, dv], written: contiguous, or rows of dv
//   contiguous values at o[b*o_sb + h*o_sh + r*o_sr] when o_sr >= 0 (a following Transpose to
//   [batch, lq, heads, dv] written in place).
#pragma once

#include <cstdint>

#include "kernels/isa.h"

namespace mixq::kernels {

struct AttnView {
  const float* p = nullptr;
  int64_t sb = 0, sh = 0, sr = 0, sc = 0;
};

struct AttnArgs {
  int64_t batch = 1, heads = 1, lq = 0, lk = 0, d = 0, dv = 0;
  AttnView q, k, v;
  float* o = nullptr;
  int64_t o_sb = -1, o_sh = -1, o_sr = -1;  // output strides; o_sr < 0: contiguous
  float scale = 1.0f;
  bool divide = false;  // S = QK / scale (a Div in the graph) instead of QK * scale
};

// The fast path (vector loops for `isa`), pairs (b, h) spread over `threads` OpenMP threads.
void attention_f32(const AttnArgs& a, int threads, Isa isa);
// The scalar reference the fast paths are tested against: plain loops, std::exp, one pair at a time.
void attention_f32_ref(const AttnArgs& a);

// Per-ISA bodies (attention_impl.h): pairs [p0, p1) with a scratch of attention_scratch_floats(a).
int64_t attention_scratch_floats(const AttnArgs& a);
void attention_pairs_base(const AttnArgs& a, int64_t p0, int64_t p1, float* scratch);
void attention_pairs_avx2(const AttnArgs& a, int64_t p0, int64_t p1, float* scratch);
void attention_pairs_avx512(const AttnArgs& a, int64_t p0, int64_t p1, float* scratch);

}  // namespace mixq::kernels
