// Load-time fusion of op chains that exporters write out as primitive ops.
//
// LayerNorm written out as primitive ops (what torch.onnx exports below opset
// 17): ReduceMean(x, last axis) -> Sub -> Pow 2 -> ReduceMean -> Add eps -> Sqrt -> Div -> Mul gamma
// -> Add beta becomes one op computing the same float operations in the same order (the same bits;
// row sums as in row_reduce.h), one pass per row instead of nine tensors. Intermediate values read
// elsewhere or graph outputs keep the chain unfused. No libtorch.
#pragma once

#include <memory>
#include <vector>

#include "pack/mxq_format.h"
#include "runtime/ops.h"

namespace mixq::rt {

// ops[i] is node pm.nodes[i]; slots hold the stored tensors (is_const). Returns the number fused;
// fused chains leave their last op replaced by the LayerNorm and the others skipped.
int fuse_layernorms(const pack::PackedModel& pm, std::vector<std::unique_ptr<Op>>& ops,
                    std::vector<std::vector<int>>& op_in, std::vector<std::vector<int>>& op_out,
                    std::vector<bool>& skip, const std::vector<Tensor>& slots, const std::vector<bool>& is_const,
                    const std::vector<int>& output_slots);

// GELU (erf form, what torch.onnx exports for nn.GELU): Div(x, c) -> Erf -> Add 1 -> Mul x ->
// Mul 0.5 becomes one op on kernels::gelu_erf_f32, one pass over x instead of five tensors. Not the
// same bits as the chain (GELU's own erf, FMA; within 2e-7 of the exact value relative to 1 + |x|,
// tested). Same conventions as above; `isa` picks the kernel path.
int fuse_gelus(const pack::PackedModel& pm, std::vector<std::unique_ptr<Op>>& ops,
               std::vector<std::vector<int>>& op_in, std::vector<std::vector<int>>& op_out, std::vector<bool>& skip,
               const std::vector<Tensor>& slots, const std::vector<bool>& is_const,
               const std::vector<int>& output_slots, kernels::Isa isa);

// Scaled-dot-product attention: MatMul(Q, K) [-> Mul(c) | Div(c), c a constant scalar] ->
// Softmax(axis -1) -> MatMul(., V), both MatMuls of run-time tensors, becomes one op on
// kernels::attention_f32 (no [.., lq, lk] score tensor; kernels/attention.h). Not the same bits as
// the chain: the products are summed in another order and each row is scaled by 1/sum; within a few
// ulp (tested). Transposes feeding Q, K, V (read by nothing else) and a Transpose of the output that
// swaps heads and rows are folded into the kernel's strides. Shapes the kernel does not cover run
// the original ops (transposes included), kept inside the fused one.
int fuse_attention(const pack::PackedModel& pm, std::vector<std::unique_ptr<Op>>& ops,
                   std::vector<std::vector<int>>& op_in, std::vector<std::vector<int>>& op_out,
                   std::vector<bool>& skip, const std::vector<Tensor>& slots, const std::vector<bool>& is_const,
                   const std::vector<int>& output_slots, kernels::Isa isa);

// Linear layers' bias Adds: MatMul | Gemm with a constant weight -> Add(constant vector [N]) becomes
// the layer with the vector added to its bias (the integer path adds it in its epilogue, in the GEMM's
// tiles; the float paths where they add their bias). One pass over the output less per layer.
// Layers on a oneDNN primitive (bias baked in) keep their Add.
int fuse_linear_biases(const pack::PackedModel& pm, std::vector<std::unique_ptr<Op>>& ops,
                       std::vector<std::vector<int>>& op_in, std::vector<std::vector<int>>& op_out,
                       std::vector<bool>& skip, const std::vector<Tensor>& slots, const std::vector<bool>& is_const,
                       const std::vector<int>& output_slots);

// Embedding bags: Gather (table, indices) -> ReduceSum | ReduceMean (axes an attribute or a
// constant input), the Gather read by nothing else, becomes one op summing the gathered rows
// straight into the output (ops.h make_embedding_bag; the same bits). Shapes and axes other than
// "the trailing index axes" run the two ops, kept inside the fused one.
int fuse_embedding_bags(const pack::PackedModel& pm, std::vector<std::unique_ptr<Op>>& ops,
                        std::vector<std::vector<int>>& op_in, std::vector<std::vector<int>>& op_out,
                        std::vector<bool>& skip, const std::vector<Tensor>& slots, const std::vector<bool>& is_const,
                        const std::vector<int>& output_slots);

}  // namespace mixq::rt
