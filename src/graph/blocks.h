// Block partition: the units reconstruction methods optimise one at a time (BRECQ's blocks,
// AdaRound's and AdaQuant's layers). Found from graph structure alone, never from names.
//
// 1. Only the dynamic part of the graph counts (nodes that depend on a graph input); constant
//    subgraphs (Constant, shape arithmetic) belong to no unit.
// 2. A *cut* is a point in the node order where exactly one dynamic value is live (produced at or
//    before it, read after it). The nodes between two cuts form a segment: everything a residual
//    block computes, shortcut and add included, lies between the cut before it and the one after.
// 3. Segments are merged:
//    - a segment without quantizable layers (the ReLU after a residual add, a reshape) joins the
//      segment before it (the first one joins the next);
//    - an attention segment (a Softmax, or a MatMul of two activations) joins the residual
//      segment after it: a transformer block is attention + MLP with both residuals;
//    - a run of single-layer segments where every segment but the last ends in an activation and
//      the last does not (a linear bottleneck: expand -> depthwise -> project) becomes one
//      inverted-residual unit (MobileNetV2 blocks without a shortcut);
//    - segments holding an excluded layer (the pinned first/last layers, which are not
//      reconstructed) are never merged with other layers.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "graph/layers.h"

namespace mixq {

enum class UnitKind { kLayer, kChain, kResidual, kInvertedResidual, kAttention, kTransformer };
const char* unit_kind_name(UnitKind k);  // "layer", "chain", "residual", ...

struct Unit {
  std::string name;                  // common prefix of its layers' node names, else "unit<i>"
  UnitKind kind = UnitKind::kLayer;
  std::vector<int> nodes;            // indices into Graph::nodes, ascending
  std::vector<std::string> layers;   // quantizable layer node names inside, in node order
  std::vector<std::string> inputs;   // dynamic values read by the unit and produced before it
  std::vector<std::string> outputs;  // values produced inside and read after it (or graph outputs)
};

// Units in network order; every dynamic node is in exactly one unit and every layer of `layers`
// whose node is dynamic is in one. `exclude`: layer node names that must stay alone.
std::vector<Unit> partition_units(const Graph& g, const std::vector<LayerInfo>& layers,
                                  const std::set<std::string>& exclude = {});

// One unit per quantizable layer: the layer plus the activation right after it when the layer's
// output feeds only that activation (AdaQuant optimises through the ReLU). Same order and fields.
std::vector<Unit> layer_units(const Graph& g, const std::vector<LayerInfo>& layers);

}  // namespace mixq
