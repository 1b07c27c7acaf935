// Constant folding at load, as ONNX Runtime does it, so that models from other exporters look to
// the rest of mixq like torch-exported ones.
//
// Exporters other than torch.onnx (paddle2onnx, tf2onnx, older torch) often hold weights in
// `Constant` nodes, or pass an initializer through `Identity`/`Cast`/`Reshape` before a Conv.
// mixq finds quantizable layers by "weight input is an initializer" (graph/layers.h), so such
// weights would be invisible. Folding every node whose inputs are all constant turns them back
// into initializers under the node's output name; `Shape` of a value whose dims are statically
// known (from the model's value_info / declared inputs), and `Gather` of static dims out of a
// `Shape`, fold too (the Shape -> Gather -> Concat -> Reshape chains of dynamic-batch exports).
#pragma once

#include <string>

#include "graph/ir.h"
#include "onnx/import.h"

namespace mixq {

struct FoldStats {
  int nodes = 0;         // nodes replaced by initializers
  int shape_nodes = 0;   // of which Shape / Gather-of-Shape on static dims
  int removed_initializers = 0;  // initializers nothing reads any more
};

// Folds in place, in topological order, using the executor's own kernels (so folding computes
// exactly what running would). Not folded: nodes of other domains or without a mixq kernel,
// random ops, nodes producing a graph output, nodes whose kernel throws (the executor reports
// that error at run time, with the node named), and nodes whose result would be much larger
// than their inputs (over 4M elements and 4x the inputs: ConstantOfShape/Expand/Tile blow-ups
// stay lazy, as in ORT).
FoldStats fold_constants(Graph& g);

// The model loader every front end uses: load_onnx, then fold_constants.
Graph load_model(const std::string& path, const ImportOptions& opts = {});

}  // namespace mixq
