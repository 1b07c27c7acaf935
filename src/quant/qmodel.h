// A quantized model: the prepared float graph plus, for every quantized layer, its weight
// quantizer (with the integer codes) and, for every quantized activation tensor, its quantizer.
// Produced by quantize (quant/), consumed by simulation (fake-quant executor), the QDQ exporter
// (onnx/export.h) and later the packer.
#pragma once

#include <string>
#include <vector>

#include "graph/ir.h"
#include "quant/embed_scheme.h"
#include "quant/scheme.h"
#include "quant/sparq_ref.h"

namespace mixq {

struct QuantizedWeight {
  std::string node;     // layer node name
  std::string weight;   // initializer name in graph
  QScheme scheme;
  QParams params;
  // Integers in [qmin, qmax], same shape as the weight: float32 as the methods make them, or the
  // smallest integer dtype that holds the grid once compact_codes() ran (a quarter of the memory
  // at <= 8 bits). Arithmetic with float tensors promotes to float32 (the same values); code that
  // needs float32 storage converts (`codes.to(at::kFloat)`).
  at::Tensor codes;
  // Embedding tables under a row-wise scheme (quant/embed_quant.h): `scheme` is then asymmetric
  // per-channel on axis 0 (one parameter per row), params.zero_point is 0 and
  //   kRowwise / kRowwiseGreedy: params.scale [rows, 1] and `offset` [rows, 1], fp16-valued:
  //                              x~ = scale * q + offset;
  //   kCodebook: `codebook` [rows, 2^bits], fp16-valued: x~ = codebook[row, q]; scale is 1.
  // Use dequantize_weight() rather than dequantize(codes, params, scheme) for any weight.
  EmbedScheme embed = EmbedScheme::kNone;
  at::Tensor offset, codebook;
  // Multipoint (quant/multipoint.h): extra low-bit points added to some output channels (on
  // `extra_axis` of the weight). Level m holds every channel's m-th extra point:
  //   x~ = s * (q - z) + sum_m scale_m[c] * (codes_m - multipoint_zero_point(scheme)),
  // each level's codes shaped like the weight on the layer's grid; a channel without an m-th point
  // has scale 1 and codes equal to the zero point (value 0) at that level and used_m[c] = false.
  struct ExtraLevel {
    at::Tensor codes;  // float32 integers in [qmin, qmax], weight-shaped
    at::Tensor scale;  // float32 [C]
    at::Tensor used;   // bool [C]
  };
  std::vector<ExtraLevel> extra;
  int64_t extra_axis = 0;
  // Kernel-wise bits (quant/channel_bits.h): one width per channel of scheme.axis, scheme.bits
  // their maximum; codes and zero point of each channel inside its own grid. Empty: uniform.
  std::vector<int> channel_bits;
};

struct QuantizedActivation {
  std::string tensor;   // value name (a layer input); quantized once, shared by its consumers
  QScheme scheme;       // per tensor
  QParams params;       // scalar scale / zero_point
  SparqScheme sparq;    // SPARQ on top of the 8-bit grid (quant/sparq_ref.h); simulated only
  int64_t sparq_axis = 1;  // vSPARQ pairing axis (quant/sparq_apply.h sparq_pair_axis)
  bool all_readers = false;  // quantized for every reader, not only quantized layers (ActPlacement::kOutputs)
};

struct QuantizedModel {
  Graph graph;  // prepared float graph (BatchNorm folded); weights here are still float
  std::vector<QuantizedWeight> weights;
  std::vector<QuantizedActivation> activations;
};

// Codes (and multipoint levels' codes) held as uint8 / int8 / int16 where the weight's grid fits
// and every code is an integer inside it, else left as they are (qmodel.cpp). The values do not
// change. Called once a weight's codes are final for a step: after quantize_weights and after the
// methods and finishing steps (ViT-B: 329 MB of float codes -> 82 MB).
void compact_codes(QuantizedWeight& qw);
void compact_codes(QuantizedModel& qm);

}  // namespace mixq
