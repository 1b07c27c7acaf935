// SPARQ fake quantization on libtorch (the vectorised twin of sparq_ref in quant/sparq_ref.h, bit
// exact against it) and its place in the simulation: the executor running qdq_graph(qm) gets a
// hook on the dequantized copy T_dq of every SPARQ activation T, which replaces T_dq by its SPARQ
// form. Every layer that reads T_dq (the quantized layers reading T) sees the SPARQ values; other
// readers of T keep the float tensor, as with plain QDQ.
//
// QDQ ONNX cannot express SPARQ (QuantizeLinear/DequantizeLinear have no per-value window), so
// the exporter and the packer refuse a model with SPARQ activations (check_no_sparq) instead of
// silently writing a plain A8 model.
#pragma once

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <string>

#include "exec/executor.h"
#include "graph/ir.h"
#include "quant/qmodel.h"
#include "quant/sparq_ref.h"

namespace mixq {

// SPARQ of an 8-bit fake-quantized tensor x = s * (q - z) (per tensor, scale s): returns
// s * sparq(q - z) as contiguous float32. `axis` is the vSPARQ pairing axis (negative counts
// from the end). `stats` (optional) is added to, as sparq_ref does.
at::Tensor sparq_fake_quant(const at::Tensor& x, float scale, const SparqScheme& s, int64_t axis,
                            SparqStats* stats = nullptr);

// The vSPARQ pairing axis of a layer's activation input: its reduction axis over input channels.
// Conv / ConvTranspose: 1 (neighbouring input channels at the same pixel, both in every dot
// product that reads the pixel); depthwise Conv (one input channel per group: no channel
// neighbour in the same dot product): -1 (neighbouring columns of the same channel and row, a
// static stand-in for neighbouring kernel taps). Gemm: 1, or 0 with transA. MatMul: -1 when the
// activation is the left operand, -2 when it is the right one.
int64_t sparq_pair_axis(const Graph& g, const std::string& layer_node);

// What the simulation saw per SPARQ activation tensor (filled by the hooks while it runs).
struct SparqCounters {
  std::map<std::string, SparqStats> per_tensor;
  SparqStats total() const;
};

// The report's "sparq" object: totals (values, zeros, pairs, pairs_8bit, frac_pairs_8bit,
// rounded, the window histogram by name), signed_tensors (tensors outside the paper's unsigned
// setting) and per-tensor frac_pairs_8bit / frac_zeros. null when nothing was counted.
nlohmann::json sparq_json(const SparqCounters& c);

// An executor running qdq_graph(qm) with SPARQ applied to every activation whose scheme asks for
// it. `counters` (optional, must outlive the executor's runs) receives what each run saw.
std::unique_ptr<Executor> simulation_executor(const QuantizedModel& qm, SparqCounters* counters = nullptr);

// Throws kUnsupported naming the first SPARQ activation and `target` ("QDQ ONNX export", "the
// packed .mxq format") when qm uses SPARQ anywhere: those formats would run it as plain A8.
void check_no_sparq(const QuantizedModel& qm, const std::string& target);

}  // namespace mixq
