// onnx::TensorProto <-> at::Tensor. Internal to src/onnx (pulls in protobuf headers).
#pragma once

#include <ATen/core/Tensor.h>
#include <onnx/onnx_pb.h>

#include <string>

#include "graph/ir.h"

namespace mixq {

// Converts a TensorProto to a contiguous CPU tensor. `base_dir` resolves external data; `what`
// names the tensor in error messages ("initializer 'conv1.weight' in model.onnx").
// uint16/uint32 are widened to int32/int64 (libtorch has no such types); uint64 to int64 with a
// range check. Strings and complex numbers are rejected with kUnsupported.
at::Tensor tensor_from_proto(const onnx::TensorProto& tp, const std::string& base_dir,
                             const std::string& what);

// Converts a tensor (any device/layout; copied to contiguous CPU) to a TensorProto named `name`
// with raw_data (little-endian) and the ONNX data_type of its scalar type (int32 tensors that held
// uint16 are written as int32). Types ONNX cannot hold (complex, quantized) throw kUnsupported.
onnx::TensorProto tensor_to_proto(const at::Tensor& t, const std::string& name);

}  // namespace mixq
