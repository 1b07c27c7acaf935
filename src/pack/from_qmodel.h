// QuantizedModel (libtorch tensors) -> PackedModel (plain buffers). The only libtorch-touching file
// of src/pack; the format core (mxq_format.*, bitpack.*, byte_io.h) stays libtorch-free.
#pragma once

#include "pack/mxq_format.h"
#include "quant/plan.h"
#include "quant/qmodel.h"

namespace mixq {

// Every quantized weight becomes packed codes + scales + zero points; every other initializer and
// every Constant node's value becomes a float32 / int64 tensor (a quantized weight that some other
// node also reads is additionally stored as float, as the simulation keeps it for that reader).
// Throws kUnsupported naming the node for what .mxq cannot hold (string/graph attributes, tensor
// attributes other than Constant's value, non-numeric initializers).
pack::PackedModel pack_quantized_model(const QuantizedModel& qm);

// Sets plan.structure_bytes / float_structure_bytes (and the cost) from the .mxq file the plan
// will produce from `g` (the prepared graph): what the file holds beyond the per-layer cost model
// and the other initializers (header, compressed graph section, Constant tensors, activation
// quantizers). So PlanCost::size_bytes predicts the whole file, to a few bytes.
void count_file_structure(const Graph& g, QuantPlan& plan);

// Multipoint layers (from_qmodel_mp.cpp). The weight with every extra point as one more output
// channel on the same grid (per-channel scales), `groups` equal groups kept for grouped
// convolutions; dest[p] is the original channel output channel p adds to (-1: an all-zero
// padding channel) and main[p] whether it is that channel's own weights.
struct MultipointLayout {
  QuantizedWeight weight;
  std::vector<int64_t> dest;
  std::vector<bool> main;
};
MultipointLayout multipoint_layout(const QuantizedWeight& qw, int64_t groups);
// Points the layer node at the layout's bias (zeros on the extra channels) and inserts the
// MultipointSum node that folds the extra channels' outputs back into the node's output.
void rewrite_multipoint_node(const QuantizedWeight& qw, const MultipointLayout& lay, const Graph& g,
                             pack::PackedModel& m);

}  // namespace mixq
