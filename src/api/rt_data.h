// Glue between mixq's datasets (libtorch tensors) and the libtorch-free runtime, for the front ends
// (CLI, Python): the conversion lives here so src/runtime never sees at::Tensor.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "runtime/runtime.h"

namespace mixq {

// Opens `spec` for a packed model: its declared inputs and the preprocessing in its metadata
// (under the command line's overrides).
std::unique_ptr<Dataset> open_dataset_for(const pack::PackedModel& m, const std::string& spec,
                                          const PreprocessOverride& pre = {});
// Runtime outputs as libtorch tensors (copies), for evaluation and fidelity.
std::vector<at::Tensor> from_runtime(const std::vector<rt::Tensor>& v);
// A batch's inputs as runtime tensors (float32 / int64 copies).
std::vector<rt::Tensor> to_runtime(const Batch& b);
// Parses --isa (ref|avx2|avx512|auto) into the runtime's choice (auto: MIXQ_ISA or cpuid).
kernels::Isa parse_isa(const std::string& s);
// Runtime options from --isa and --threads. One thread unless --threads: the kernels fork/join
// per layer, which costs more than it saves on small models and collapses on an oversubscribed
// machine (see BENCHMARKS.md).
rt::ModelOptions runtime_options(const std::string& isa, int threads);

}  // namespace mixq
