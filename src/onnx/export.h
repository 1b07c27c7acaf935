// Graph -> ONNX. With import.cpp the only code that knows protobuf: this is the only writer.
#pragma once

#include <string>

#include "graph/ir.h"

namespace mixq {

// Serializes a Graph as an ONNX ModelProto: ir_version (the source's, at least 7, at most what
// libonnx knows; 8 for opset >= 15), producer "mixq", opset imports, metadata_props, graph
// inputs / outputs / value_info with their types and shapes, initializers (raw_data, dtype of the
// at::Tensor: uint16/uint32 widened by the importer come back as int32/int64) and nodes with their
// attributes (graph-valued attributes are not kept by the IR: such nodes are refused with
// kUnsupported). Does not run the checker.
std::string graph_to_onnx_bytes(const Graph& g);

// graph_to_onnx_bytes + onnx::checker::check_model (a rejection is kInternal: mixq wrote an invalid
// model) + write_file_atomic (kIO on failure).
void save_onnx(const Graph& g, const std::string& path);

}  // namespace mixq
