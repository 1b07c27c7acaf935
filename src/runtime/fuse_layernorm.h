// Load-time fusion of LayerNorm written out as primitive ops (what torch.onnx exports below opset
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

}  // namespace mixq::rt
