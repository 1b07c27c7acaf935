#include "graph/layers.h"

namespace mixq {

std::vector<LayerInfo> find_layers(const Graph& g) {
  std::vector<LayerInfo> out;
  for (const auto& n : g.nodes) {
    if (!n.domain.empty()) continue;
    LayerInfo L;
    L.node = n.name;
    L.op = n.op_type;
    auto init = [&](size_t i) { return i < n.inputs.size() && g.is_initializer(n.inputs[i]); };
    if (n.op_type == "Conv" || n.op_type == "ConvTranspose" || n.op_type == "Gemm") {
      if (!init(1)) continue;
      L.weight_input = 1;
      if (n.inputs.size() > 2 && init(2)) L.bias = n.inputs[2];
    } else if (n.op_type == "MatMul") {
      if (init(1)) L.weight_input = 1;
      else if (init(0)) L.weight_input = 0;
      else continue;
    } else if (n.op_type == "Gather") {
      if (!init(0)) continue;
      L.weight_input = 0;
    } else if (n.op_type == "LSTM" || n.op_type == "GRU" || n.op_type == "RNN") {
      // The input projection W [dirs, gates*H, In] is the layer's weight; the recurrent weight R
      // and the biases stay float (one weight per layer; see the header).
      if (!init(1)) continue;
      L.weight_input = 1;
    } else {
      continue;
    }
    L.weight = n.inputs[L.weight_input];
    const at::Tensor& w = g.initializers.at(L.weight);
    if (!at::isFloatingType(w.scalar_type())) continue;  // integer tables are not weights
    L.weight_shape = w.sizes().vec();
    L.input = n.inputs[L.weight_input == 1 ? 0 : 1];
    L.output = n.outputs[0];
    const int64_t rank = static_cast<int64_t>(L.weight_shape.size());
    if (n.op_type == "ConvTranspose" || n.op_type == "LSTM" || n.op_type == "GRU" || n.op_type == "RNN") {
      L.channel_axis = rank > 1 ? 1 : 0;  // [Cin, Cout/group, k...]; recurrent W [dirs, gates*H, In]
    } else if (n.op_type == "Gemm") {
      const Attribute* tb = n.attr("transB");
      L.channel_axis = tb && tb->i != 0 ? 0 : (rank > 1 ? 1 : 0);
    } else if (n.op_type == "MatMul") {  // [..., K, N] as second operand, [..., M, K] as first
      L.channel_axis = L.weight_input == 1 ? rank - 1 : (rank > 1 ? rank - 2 : 0);
    }  // Conv [Cout, Cin/group, k...] and Gather tables [rows, dim]: axis 0
    L.params = w.numel() + (L.bias.empty() ? 0 : g.initializers.at(L.bias).numel());
    out.push_back(std::move(L));
  }
  return out;
}

}  // namespace mixq
