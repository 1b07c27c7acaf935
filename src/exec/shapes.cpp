#include "exec/shapes.h"

#include <ATen/ATen.h>

#include <map>

namespace mixq {

std::vector<at::Tensor> dummy_inputs(const Graph& g, int64_t batch) {
  std::vector<at::Tensor> out;
  for (const auto& vi : g.inputs) {
    MIXQ_CHECK(vi.has_shape, ErrorKind::kInvalidModel, g.source_path, ": input '", vi.name,
               "' declares no shape; mixq needs the rank and the non-batch dimensions");
    std::vector<int64_t> dims = vi.dims;
    for (size_t d = 0; d < dims.size(); ++d)
      if (dims[d] < 0) dims[d] = d == 0 ? batch : 1;
    out.push_back(at::zeros(dims, at::TensorOptions().dtype(scalar_type_for(vi.dtype, vi.name))));
  }
  return out;
}

void annotate_macs(Executor& ex, std::vector<LayerInfo>& layers) {
  const Graph& g = ex.graph();
  std::vector<std::vector<int64_t>> in_shapes(layers.size()), out_shapes(layers.size());
  std::vector<int> ids;
  for (size_t i = 0; i < layers.size(); ++i) {
    ids.push_back(ex.add_hook(layers[i].output, [&, i](const std::string&, at::Tensor& t) {
      out_shapes[i] = t.sizes().vec();
    }));
    ids.push_back(ex.add_hook(layers[i].input, [&, i](const std::string&, at::Tensor& t) {
      in_shapes[i] = t.sizes().vec();
    }));
  }
  try {
    ex.run(dummy_inputs(g, 1));
  } catch (...) {
    for (int id : ids) ex.remove_hook(id);
    throw;
  }
  for (int id : ids) ex.remove_hook(id);
  for (size_t i = 0; i < layers.size(); ++i) {
    LayerInfo& L = layers[i];
    const auto& ws = L.weight_shape;
    int64_t out_numel = 1, in_numel = 1, w_numel = 1;
    for (auto d : out_shapes[i]) out_numel *= d;
    for (auto d : in_shapes[i]) in_numel *= d;
    for (auto d : ws) w_numel *= d;
    L.out_shape = out_shapes[i];
    if (L.op == "Conv") {
      L.macs = out_numel * (w_numel / ws[0]);  // each output: Cin/group * prod(kernel)
    } else if (L.op == "ConvTranspose") {
      L.macs = in_numel * (w_numel / ws[0]);   // each input: Cout/group * prod(kernel)
    } else if (L.op == "Gemm") {
      // Weight is [N, K] or [K, N] (transB); N is the output width either way.
      int64_t n = out_shapes[i].empty() ? 1 : out_shapes[i].back();
      L.macs = out_numel * (n > 0 ? w_numel / n : 0);
    } else if (L.op == "MatMul") {
      // Constant second operand [..., K, N]; constant first operand [..., M, K].
      int64_t k = L.weight_input == 1 ? (ws.size() >= 2 ? ws[ws.size() - 2] : ws[0]) : ws.back();
      L.macs = out_numel * k;
    } else {
      L.macs = 0;  // Gather: lookups, no arithmetic
    }
  }
}

}  // namespace mixq
