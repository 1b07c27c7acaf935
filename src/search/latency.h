// Per-layer latency table: milliseconds per (layer, weight bits), measured on this machine by the
// packed runtime (`mixq profile -o FILE`) or supplied by the user. Formats (docs/hwspec.md):
//   {"mixq_latency_version": 1, "layers": {"<layer>": {"2": 0.011, "4": 0.013, "8": 0.020}}}
//   {"mixq_latency_version": 1, "layers": [{"name": "<layer>", "ms": {"4": 0.013, ...}}, ...]}
// (the second is what `mixq profile` writes; its extra fields are ignored).
// Bits a layer lacks are not allowed for it when a latency budget is given.
#pragma once

#include <map>
#include <string>

namespace mixq {

struct LatencyTable {
  std::string path;
  std::map<std::string, std::map<int, double>> ms;  // layer -> bits -> milliseconds
};

LatencyTable load_latency_table(const std::string& path);

}  // namespace mixq
