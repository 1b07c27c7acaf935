// Graph passes run by `prepare`: BatchNormalization folding and removal of inference no-ops.
#pragma once

#include <vector>

#include "graph/ir.h"

namespace mixq {

// Folds every inference BatchNormalization (scale, B, mean, var initializers; no training
// outputs; spatial) whose input X is produced by a Conv, ConvTranspose or Gemm with an initializer
// float32 weight (and, if present, an initializer bias) and read by nothing else (not even a graph
// output), into that layer. With f = gamma / sqrt(var + eps) per output channel (in double):
//   Conv           W [Cout, Cin/g, k...]  W'[o, ...] = W[o, ...] * f[o]
//   ConvTranspose  W [Cin, Cout/g, k...]  W'[i, j, ...] = W[i, j, ...] * f[o],
//                                         o = i / (Cin/g) * (Cout/g) + j
//   Gemm           B [K, N] (transB=0: channel axis 1) or [N, K] (transB=1: channel axis 0); the
//                  bias C (times the Gemm's beta, which becomes 1) may have any shape that
//                  broadcasts with [N]
//   b' = (b - mean) * f + beta   (b = 0 when the layer had no bias; a bias input is added)
// Results are stored as float32. The BN node is removed and the layer now produces the BN's output
// name (so graph outputs and later readers keep their names; X's value_info is dropped).
// An initializer used only by this layer is replaced under its own name; one that other nodes
// also read is left untouched and the layer gets a copy under a fresh name. Initializers no node
// reads any more (the BN's parameters, replaced weights) are removed. BatchNormalization nodes
// that do not match are left as they are. Returns the number folded.
int fold_batchnorm(Graph& g);

// What one fold did, for BatchNorm re-estimation (quant/methods/bn_reestimate.h): the layer's
// output is now f * (W x + b - mean) + beta, f = gamma / sqrt(var + eps). [C] float32 tensors,
// C = the layer's output channels (Conv/ConvTranspose: output axis 1; Gemm: the last axis).
struct FoldedBn {
  std::string layer;  // node name of the layer the BN went into
  at::Tensor gamma, beta, factor;
  double eps = 1e-5;
};
int fold_batchnorm(Graph& g, std::vector<FoldedBn>* folded);

// Bypasses Identity nodes and inference Dropout nodes (opset < 7: is_test=1; opset >= 12: no
// training_mode input or a constant false one; the mask output unused) whose output is not a
// graph output: their readers read the input directly. Returns the number of nodes removed.
int remove_identity_and_dropout(Graph& g);

}  // namespace mixq
