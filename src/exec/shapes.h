// Shapes and MACs found by running the model once on a dummy sample.
#pragma once

#include <vector>

#include "exec/executor.h"
#include "graph/layers.h"

namespace mixq {

// A zero-filled batch of `batch` samples for the model's inputs (symbolic dims other than the
// first become 1).
std::vector<at::Tensor> dummy_inputs(const Graph& g, int64_t batch = 1);

// Fills LayerInfo::out_shape and ::macs (per sample) by running `ex` on one dummy sample.
void annotate_macs(Executor& ex, std::vector<LayerInfo>& layers);

}  // namespace mixq
