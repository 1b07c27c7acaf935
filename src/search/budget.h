// Budgets an allocator must meet. Any combination may be given; a zero (or negative max_drop)
// field is not a limit.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>

namespace mixq {

struct Budget {
  double avg_wbits = 0;    // params-weighted mean weight bits over every quantized layer (pinned
                           // ones included), as PlanCost::avg_wbits
  int64_t bytes = 0;       // PlanCost::size_bytes: every stored bit (weights, scales, zero points,
                           // float tensors)
  double bops = 0;         // PlanCost::bops: sum MACs x weight bits x activation bits per sample
  double latency_ms = 0;   // sum of the per-layer latency table's entries (needs a table)
  double max_drop = -1;    // >= 0: minimise size instead, keeping the predicted signal increase
                           // (sum over layers, the signal's units) at most this

  bool any() const { return avg_wbits > 0 || bytes > 0 || bops > 0 || latency_ms > 0 || max_drop >= 0; }
  nlohmann::json to_json() const {
    nlohmann::json j = nlohmann::json::object();
    if (avg_wbits > 0) j["avg_wbits"] = avg_wbits;
    if (bytes > 0) j["size_bytes"] = bytes;
    if (bops > 0) j["bops"] = bops;
    if (latency_ms > 0) j["latency_ms"] = latency_ms;
    if (max_drop >= 0) j["max_drop"] = max_drop;
    return j;
  }
};

}  // namespace mixq
