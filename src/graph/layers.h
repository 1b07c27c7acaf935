// Quantizable layers: the nodes whose weights mixq quantizes. Found from graph structure alone:
// Conv / ConvTranspose / Gemm with an initializer weight, MatMul with an initializer operand, and
// Gather whose data (the embedding table) is an initializer, and LSTM / GRU / RNN whose input
// weight W is one (weight-only in effect: W is quantized per gate row, the recurrent weight R,
// biases and hidden state stay float, since a layer holds one weight).
#pragma once

#include <string>
#include <vector>

#include "graph/ir.h"

namespace mixq {

struct LayerInfo {
  std::string node;    // node name
  std::string op;      // op type
  std::string weight;  // initializer name of the weight / table
  std::string bias;    // initializer name of the bias, "" if none
  int weight_input = 1;                // which node input is the weight
  std::string input;   // the other data input: the activation (Gather: the indices)
  std::string output;  // the node's first output
  int64_t channel_axis = 0;            // output-channel axis of the weight (per-channel scales)
  std::vector<int64_t> weight_shape;
  int64_t params = 0;  // weight + bias elements
  int64_t macs = 0;    // multiply-accumulates for one sample (filled by annotate_macs)
  std::vector<int64_t> out_shape;  // output shape for one sample (filled by annotate_macs)
};

std::vector<LayerInfo> find_layers(const Graph& g);

}  // namespace mixq
