// Inference-time operator fusion, like ONNX Runtime's graph optimizer, used inside the Executor.
//
// PyTorch's ONNX export decomposes LayerNorm, erf-GELU and Linear into chains of small
// elementwise/reduction nodes. find_fusions() recognizes these chains in a Graph and returns one
// group per chain with a fused kernel computing the whole chain with one libtorch call:
//   Linear    MatMul(X, W) -> Add(., b)                      at::addmm on the 2-D view of X
//   Gelu      x * 0.5 * (1 + erf(x / sqrt(2))), any order of the two Muls and of commutative
//             operands; x / sqrt(2) may also be x * (1/sqrt(2))    at::gelu
//   LayerNorm ReduceMean(X) -> Sub(X, .) -> Pow(., 2) -> ReduceMean -> Add(., eps) -> Sqrt ->
//             Div(sub, .) -> Mul(., gamma) -> Add(., beta), one axis, keepdims   at::layer_norm
//   ConvBn    Conv(X, W[, B]) -> BatchNormalization (inference) [-> activation]   the Conv kernel
//             on BatchNorm folded into W and B (refolded only when a weight tensor changes), then
//             the activation in place: one pass over the activations instead of three (PyTorch
//             eager runs all three; this is where the executor gains on convnets at large batch)
//   ConvAct   Conv(X, W[, B]) -> activation (inference; BatchNorm already folded, as in
//             torch.onnx exports in eval mode)   the Conv kernel, then the activation in place
//             Activations: Relu; Clip with constant float bounds (ReLU6); hard-swish
//             Mul(x, HardSigmoid(x)) (at::hardswish_ for alpha 1/6, beta 1/2) or the HardSwish
//             op (opset 14); SiLU
//             Mul(x, Sigmoid(x)) (at::silu_). Clip, hard-swish and SiLU are off under
//             MIXQ_EXEC_LEGACY=1 (and ConvAct altogether), for before/after measurements.
//   HardSwish / Silu   Mul(x, HardSigmoid(x)) / Mul(x, Sigmoid(x)) not after a fusable Conv:
//             at::hardswish / at::silu, one pass and no intermediate tensor
//   AddRelu   Add(a, b) -> Relu (a residual join)             at::add, then relu_ in place
//   QuantDequant [Clip ->] QuantizeLinear -> DequantizeLinear, one scale and zero point (the
//             fake-quantized activations of a QDQ graph): one pass, no 8-bit buffer, the same bits
//             (off under MIXQ_EXEC_LEGACY=1)
//   ProducerQuantDequant  a Conv, ConvAct, ConvBn, Mul or Add whose result only a QuantDequant
//             reads: the QDQ in place on the producer's fresh buffer (no second activation-sized
//             buffer; a new one when the result shares its storage)
//   GemmAct   [Flatten ->] Gemm(A, B[, C]) -> activation with alpha = beta = 1, transA = 0, float, C absent or
//             [N] (fully connected layers as torch.onnx exports them): at::addmm on a cached
//             contiguous B^T (transB), on the calling thread only for small GEMMs, then the
//             activation in place (off under MIXQ_EXEC_LEGACY=1)
//   Attention MatMul(Q, K) [-> Mul|Div by a float scalar constant] -> Softmax(last axis) ->
//             MatMul(., V), rank 3 or 4, no broadcasting, float32, no autograd
//             kernels::attention_f32 (one row of scores at a time; no [.., lq, lk] tensor)
//   EmbedSum  Gather(table, idx [N, L], axis 0) -> ReduceSum(axes [1])   at::embedding_bag (sum):
//             the [N, L, D] lookup is never materialized (25 MB at batch 256 for the embedding
//             fixture); indices outside [0, rows) (negative ones wrap in Gather) run unfused
// The graph itself is never rewritten: the executor runs a group's fused kernel in place of its
// nodes only while no hook observes a value inside the group (see executor.cpp).
//
// Rules every group satisfies:
// - every interior value (produced by a member node) is consumed only by member nodes and is not
//   a graph output; the group's output is the last member's output;
// - constants baked into the kernel (the exponent 2, eps, 1, 0.5, sqrt(2)) come from initializers
//   or Constant nodes and are checked exactly at match time; their values are listed in
//   `constants` so the executor can fall back when a hook could change them;
// - tensors that are data for the kernel (X, W, b, gamma, beta) are read from their value slots at
//   run time; FusedKernel::accepts() checks per call that dtypes and shapes are the ones the fused
//   math covers (float/double, 2-D W with 1-D b, 1-D gamma/beta over the last axis, ...), and the
//   executor runs the original nodes when it says no.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "exec/kernel.h"
#include "graph/ir.h"

namespace mixq {

enum class FusionKind { kLinear, kGelu, kLayerNorm, kConvBn, kAddRelu, kEmbedSum, kConvAct, kHardSwish, kSilu, kQdq, kProducerQdq, kGemmAct,
                        kAttention };
// "Linear", "Gelu", "LayerNorm", "ConvBn", "AddRelu", "EmbedSum", "ConvAct", "HardSwish", "Silu",
// "QuantDequant", "ProducerQuantDequant", "GemmAct", "Attention"
const char* fusion_kind_name(FusionKind k);

class FusedKernel : public OpKernel {
 public:
  // False when this call's inputs are outside what the fused math covers; the caller then runs the
  // group's original nodes. compute() may assume accepts(in) returned true.
  virtual bool accepts(const std::vector<at::Tensor>& in) const = 0;
};

struct FusionGroup {
  FusionKind kind;
  std::vector<int> nodes;              // member node indices, ascending; nodes.back() makes `output`
  std::vector<std::string> inputs;     // kernel inputs: the data tensors first (see fusion.cpp),
                                       // then every other value members read from outside the group
  std::string output;
  std::vector<std::string> interior;   // values produced and consumed inside the group
  std::vector<std::string> constants;  // values whose contents were checked and baked in
  std::unique_ptr<FusedKernel> kernel;
};

// Every fusable chain in g (default domain only), members disjoint across groups.
std::vector<FusionGroup> find_fusions(const Graph& g);

// True when MIXQ_NO_FUSION is set to something other than "" or "0".
bool fusion_disabled_by_env();

}  // namespace mixq
