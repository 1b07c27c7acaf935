#include "api/write_packed.h"

#include <map>

#include "core/atomic_file.h"
#include "core/log.h"
#include "core/malloc_tuning.h"
#include "mixq/error.h"
#include "pack/from_qmodel.h"
#include "pack/mxq_format.h"
#include "runtime/ops.h"

namespace mixq {

nlohmann::json write_packed(const QuantizeResult& r, const std::string& path) {
  MappedTensorScope mapped;  // the packed model and its bytes: whole-model buffers (as the QDQ export)
  const pack::PackedModel pm = pack_quantized_model(r.qmodel);
  // A file the runtime cannot run is not written: say which operators it lacks, all at once.
  std::map<std::string, std::string> missing;  // op -> first node
  for (const auto& n : pm.nodes)
    if (!rt::find_op(n.op) && !missing.count(n.op)) missing[n.op] = n.name;
  if (!missing.empty()) {
    std::string ops, have;
    for (const auto& [op, node] : missing) ops += (ops.empty() ? "" : ", ") + op + " (node '" + node + "')";
    for (const auto& s : rt::supported_ops())
      if (s != "MultipointSum") have += (have.empty() ? "" : ", ") + s;  // mixq's own, never in a user's model
    throw Error(ErrorKind::kUnsupported, "cannot pack " + r.plan.model + " for the runtime: it has no " + ops +
                                             " operator (it has: " + have + "); the QDQ export (-o) runs anywhere");
  }
  const std::string bytes = pack::write_mxq(pm);
  write_file_atomic(path, bytes);
  const pack::MxqSizes s = pack::mxq_sizes(pm, bytes);
  const int64_t predicted = r.plan.cost.size_bytes;
  // The plan counts codes + scales/zero points + float tensors per layer, and the file's structure
  // (header, compressed graph, Constant tensors) as one measured term; `payload` is the first part.
  const int64_t payload = s.tensor_data + s.weight_codes + s.weight_params;
  // Kernel-wise bits: .mxq stores one bit-width per weight tensor, so a layer whose channels have
  // different widths is packed at its widest (each channel's codes exact, the file larger than the
  // plan predicts); the QDQ export is exact the same way.
  nlohmann::json widened = nlohmann::json::array();
  for (const auto& w : r.qmodel.weights) {
    if (w.channel_bits.empty()) continue;
    double mean = 0;
    for (int b : w.channel_bits) mean += b;
    mean /= double(w.channel_bits.size());
    widened.push_back({{"layer", w.node}, {"packed_bits", w.scheme.bits}, {"mean_channel_bits", mean}});
    log::warn("layer '" + w.node + "' has per-channel bits (mean " + std::to_string(mean).substr(0, 4) +
              "); the .mxq runtime packs a layer at one width, so it is stored at " + std::to_string(w.scheme.bits) +
              " bits (results exact, file larger than the plan's size_bytes)");
  }
  return {{"path", path},
          {"packed_at_max_channel_bits", widened},
          {"file_bytes", s.total},
          {"predicted_bytes", predicted},
          {"ratio_to_predicted", predicted > 0 ? double(s.total) / double(predicted) : 0.0},
          {"payload_bytes", payload},
          {"payload_ratio_to_predicted", predicted > 0 ? double(payload) / double(predicted) : 0.0},
          {"predicted_structure_bytes", r.plan.structure_bytes},
          {"header_bytes", s.header},
          {"graph_bytes", s.graph},
          {"tensor_bytes", s.tensor_data},
          {"weight_code_bytes", s.weight_codes},
          {"weight_param_bytes", s.weight_params}};
}

}  // namespace mixq
