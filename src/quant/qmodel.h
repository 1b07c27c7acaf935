// A quantized model: the prepared float graph plus, for every quantized layer, its weight
// quantizer (with the integer codes) and, for every quantized activation tensor, its quantizer.
// Produced by quantize (quant/), consumed by simulation (fake-quant executor), the QDQ exporter
// (onnx/export.h) and later the packer.
#pragma once

#include <string>
#include <vector>

#include "graph/ir.h"
#include "quant/scheme.h"

namespace mixq {

struct QuantizedWeight {
  std::string node;     // layer node name
  std::string weight;   // initializer name in graph
  QScheme scheme;
  QParams params;
  at::Tensor codes;     // float32 integers in [qmin, qmax], same shape as the weight
};

struct QuantizedActivation {
  std::string tensor;   // value name (a layer input); quantized once, shared by its consumers
  QScheme scheme;       // per tensor
  QParams params;       // scalar scale / zero_point
};

struct QuantizedModel {
  Graph graph;  // prepared float graph (BatchNorm folded); weights here are still float
  std::vector<QuantizedWeight> weights;
  std::vector<QuantizedActivation> activations;
};

}  // namespace mixq
