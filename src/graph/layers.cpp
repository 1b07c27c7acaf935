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
    } else {
      continue;
    }
    L.weight = n.inputs[L.weight_input];
    const at::Tensor& w = g.initializers.at(L.weight);
    if (!at::isFloatingType(w.scalar_type())) continue;  // integer tables are not weights
    L.weight_shape = w.sizes().vec();
    L.params = w.numel() + (L.bias.empty() ? 0 : g.initializers.at(L.bias).numel());
    out.push_back(std::move(L));
  }
  return out;
}

}  // namespace mixq
