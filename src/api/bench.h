// What `mixq bench` measures: a packed model's batch-1 latency (median of `runs`) and batch-64
// throughput on the runtime, on the first images of a dataset, wall and process CPU time both (on a
// shared machine the CPU time of a single-threaded run excludes time spent descheduled); the load-time
// forms it took; optionally the libtorch executor on the float ONNX model, same images, same process.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "runtime/runtime.h"

namespace mixq {

struct BenchOptions {
  std::string model, data = "fmnist:test:64";
  int runs = 200, runs64 = 20;
  std::string onnx;           // also time this model on the executor ("" : no)
  bool node_profile = false;  // also "nodes" and "by_kind": batch-1 ms per node and per op kind
};

// {model, isa, threads, batch1_ms, batch1_cpu_ms, batch64_images_per_second, batch64_ms,
// batch64_cpu_ms, batch, forms {..}, [executor {..}, batch1_speedup, batch64_speedup, ..._cpu_speedup],
// [nodes [{node, ms}] (slowest first), by_kind [{kind, nodes, ms, share}]]}.
nlohmann::json bench_packed(const BenchOptions& o, const rt::ModelOptions& mo);

}  // namespace mixq
