// Where a packed model's time goes, and what each layer costs at each bit-width: the measurements
// behind `mixq profile` (the front ends only print them).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "runtime/runtime.h"

namespace mixq {

// A packed .mxq model, per node: {model, isa, threads, batch, runs, ms_in_nodes, peak_gops {int8,
// fp32}, nodes [{node, op, ms, share, macs, path, gops, peak_share}], by_kind [{kind, ms, macs,
// gops}]}: time per run over `runs` runs after a warm-up, the arithmetic rate each layer reached and
// its share of this core's measured peak (kernels/peak.h) times the thread count.
struct PackedProfileOptions {
  std::string model, data = "fmnist:test:64";
  int batch = 1, runs = 100;
};
nlohmann::json profile_packed(const PackedProfileOptions& o, const rt::ModelOptions& mo);

// A float ONNX model: batch-1 latency of every quantizable layer on the packed runtime at each
// weight bit-width (uniform plans, nothing pinned, `abits` activations) and in float ("32"), the
// median over `rounds` of the mean of `runs` runs: {mixq_latency_version, model, isa, threads,
// batch, runs, rounds, abits, bits, layers [{name, op, ms {"32", "8", ..}, integer {..}}],
// total_ms {..}}, the table `quantize --budget-latency-ms --latency-table` reads.
struct LatencyTableOptions {
  std::string model, calib = "fmnist:train:64";
  std::vector<int> bits = {2, 3, 4, 5, 6, 8};
  int abits = 8, runs = 100, rounds = 3;
};
nlohmann::json latency_table(const LatencyTableOptions& o, const rt::ModelOptions& mo);

// Writes a profile or latency table (`-o`) atomically; refuses to write over `model`.
void save_profile(const std::string& out, const std::string& model, const nlohmann::json& j);

}  // namespace mixq
