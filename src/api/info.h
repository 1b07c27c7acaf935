// What `mixq info` reports, as JSON for every front end: a model's quantizable layers (op, weight,
// params, MACs, output shape), its inputs and the shapes the shape pass used; the reconstruction
// units of its BatchNorm-folded graph; the operators mixq supports.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "data/dataset.h"

namespace mixq {

struct InfoOptions {
  std::string model;
  std::string data;                       // shapes of dynamic axes from this dataset's first sample
  PreprocessOverride pre;
  std::vector<std::string> input_shapes;  // --input-shape NAME:d0,d1,... (wins over data)
};

// {model, opset, nodes, producer, inputs [type strings], io [{kind, name, type}], layers [{name, op,
// weight, weight_shape, bias, params, macs, output_shape}], params, macs (null when the shape pass
// failed on unknown dims), float_params, input_shapes, unknown_dims, shape_error}.
nlohmann::json model_info(const InfoOptions& o);

// {model, units [{name, kind, layers, nodes, inputs, outputs}], pinned [layer names]}: the units
// reconstruction optimises; the first and last layer (by role, never an embedding table) stay alone.
nlohmann::json model_units(const std::string& path);

// {ops [{op, since, until}]}: the operators and opset ranges the executor supports.
nlohmann::json supported_ops();

}  // namespace mixq
