// Shapes and MACs found by running the model once on a sample.
//
// Models with dynamic axes (batch, image height/width, sequence length) declare those dims as
// symbolic (-1 in ValueInfo::dims). The shape pass needs concrete sizes: they come from
// `--input-shape NAME:1,3,48,320` or from the first sample of the job's data; a symbolic dim
// with neither is set to 1 (batch: the pass's batch), and a failure then says which dims were
// unknown and how to give them.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "exec/executor.h"
#include "graph/layers.h"

namespace mixq {

// Concrete shapes by graph input name, batch dim included (its value is replaced by the pass's
// batch).
using InputShapes = std::map<std::string, std::vector<int64_t>>;

// Parses one `--input-shape` value, "NAME:d0,d1,..." or "d0,d1,..." for a single-input model,
// into `out`. Checks the name, the rank and the static dims against the model (kInvalidArgument
// naming the input and both shapes).
void parse_input_shape(const std::string& spec, const Graph& g, InputShapes& out);

// The shapes of the first sample of `data` (nothing when it is empty).
InputShapes input_shapes_of(const Graph& g, const Dataset& data);

// "'x' dims 2 (height), 3 (width)": the symbolic dims of the model's inputs that `known` does not
// give (the batch dim, 0, is never listed). Empty when none.
std::string unknown_dims(const Graph& g, const InputShapes& known = {});

// A zero-filled batch of `batch` samples for the model's inputs: dims from `shapes` where given,
// symbolic dims otherwise 1 (dim 0: `batch`).
std::vector<at::Tensor> dummy_inputs(const Graph& g, int64_t batch = 1, const InputShapes& shapes = {});

// Fills LayerInfo::out_shape and ::macs (per sample) by running `ex` on one dummy sample. A
// failure while symbolic dims are unknown is rethrown saying which ones and how to give them.
void annotate_macs(Executor& ex, std::vector<LayerInfo>& layers, const InputShapes& shapes = {});

}  // namespace mixq
