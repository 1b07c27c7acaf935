// A quantization result stored at every layer's real bit-width in a .mxq file for the runtime
// (`mixq pack`, `quantize --pack`, Python's Result.pack()), with the file's size set against the
// plan's predicted size part by part.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "api/quantize_job.h"

namespace mixq {

// Writes `path` atomically; refuses (kUnsupported, naming every missing operator and its first
// node) a model the runtime cannot run. Returns {path, packed_at_max_channel_bits, file_bytes,
// predicted_bytes, ratio_to_predicted, payload_bytes, payload_ratio_to_predicted,
// predicted_structure_bytes, header_bytes, graph_bytes, tensor_bytes, weight_code_bytes,
// weight_param_bytes}.
nlohmann::json write_packed(const QuantizeResult& r, const std::string& path);

}  // namespace mixq
