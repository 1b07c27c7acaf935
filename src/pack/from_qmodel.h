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

}  // namespace mixq
