// ONNX -> Graph. The only place (with the exporter) that knows protobuf.
#pragma once

#include <string>

#include "graph/ir.h"

namespace mixq {

struct ImportOptions {
  bool run_checker = true;  // onnx::checker::check_model before our own checks
  bool infer_shapes = true;  // fill Graph::value_info with ONNX shape inference (opset <= 17)
};

// Reads a .onnx file (with external data files resolved relative to its directory), validates
// structure (dangling inputs, duplicate outputs, topological order, opset range) and converts
// initializers to at::Tensor. Throws mixq::Error naming the file/node/tensor on any problem.
// Operator support is checked separately by the executor (it knows the op registry).
Graph load_onnx(const std::string& path, const ImportOptions& opts = {});
// Same, from bytes already in memory (base_dir resolves external data; may be empty).
Graph load_onnx_bytes(const std::string& bytes, const std::string& display_name,
                      const std::string& base_dir, const ImportOptions& opts = {});

// A serialized onnx.TensorProto file (as in ONNX's test data: input_0.pb). `name_out`, if given,
// receives the tensor's name field.
at::Tensor load_tensor_pb(const std::string& path, std::string* name_out = nullptr);

}  // namespace mixq
