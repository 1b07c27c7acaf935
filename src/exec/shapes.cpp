#include "exec/shapes.h"

#include <ATen/ATen.h>

#include <cstdlib>
#include <map>

namespace mixq {

void parse_input_shape(const std::string& spec, const Graph& g, InputShapes& out) {
  std::string name, list = spec;
  auto colon = spec.rfind(':');
  if (colon != std::string::npos) {
    name = spec.substr(0, colon);
    list = spec.substr(colon + 1);
  } else {
    MIXQ_CHECK(g.inputs.size() == 1, ErrorKind::kInvalidArgument, "--input-shape '", spec,
               "': the model has ", g.inputs.size(), " inputs; write NAME:d0,d1,...");
    name = g.inputs[0].name;
  }
  const ValueInfo* vi = nullptr;
  std::string names;
  for (const auto& in : g.inputs) {
    if (in.name == name) vi = &in;
    names += (names.empty() ? "" : ", ") + in.name;
  }
  MIXQ_CHECK(vi, ErrorKind::kInvalidArgument, "--input-shape '", spec, "': the model has no input '", name,
             "' (its inputs: ", names, ")");
  std::vector<int64_t> dims;
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t end = list.find(',', pos);
    if (end == std::string::npos) end = list.size();
    std::string tok = list.substr(pos, end - pos);
    char* rest = nullptr;
    long long v = std::strtoll(tok.c_str(), &rest, 10);
    MIXQ_CHECK(!tok.empty() && rest && *rest == 0 && v > 0, ErrorKind::kInvalidArgument, "--input-shape '", spec,
               "': '", tok, "' is not a positive dimension (write NAME:1,3,224,224)");
    dims.push_back(v);
    pos = end + 1;
  }
  if (vi->has_shape) {
    bool ok = dims.size() == vi->dims.size();
    for (size_t d = 1; ok && d < dims.size(); ++d) ok = vi->dims[d] < 0 || vi->dims[d] == dims[d];
    MIXQ_CHECK(ok, ErrorKind::kInvalidArgument, "--input-shape '", spec, "' does not fit input '", name,
               "' declared as ", vi->str());
  }
  out[name] = dims;
}

InputShapes input_shapes_of(const Graph& g, const Dataset& data) {
  InputShapes out;
  if (data.size() == 0) return out;
  Batch b = data.get(0, 1);
  for (size_t i = 0; i < g.inputs.size() && i < b.inputs.size(); ++i) out[g.inputs[i].name] = b.inputs[i].sizes().vec();
  return out;
}

std::string unknown_dims(const Graph& g, const InputShapes& known) {
  std::string s;
  for (const auto& vi : g.inputs) {
    if (!vi.has_shape || known.count(vi.name)) continue;
    std::string dims;
    for (size_t d = 1; d < vi.dims.size(); ++d)
      if (vi.dims[d] < 0)
        dims += (dims.empty() ? "" : ", ") + std::to_string(d) +
                (vi.dim_names[d].empty() ? "" : " (" + vi.dim_names[d] + ")");
    if (!dims.empty()) s += (s.empty() ? "" : "; ") + ("'" + vi.name + "' dims " + dims);
  }
  return s;
}

std::vector<at::Tensor> dummy_inputs(const Graph& g, int64_t batch, const InputShapes& shapes) {
  std::vector<at::Tensor> out;
  for (const auto& vi : g.inputs) {
    auto given = shapes.find(vi.name);
    MIXQ_CHECK(vi.has_shape || given != shapes.end(), ErrorKind::kInvalidModel, g.source_path, ": input '",
               vi.name, "' declares no shape; give one with --input-shape ", vi.name, ":d0,d1,...");
    std::vector<int64_t> dims = given != shapes.end() ? given->second : vi.dims;
    for (size_t d = 0; d < dims.size(); ++d)
      if (dims[d] < 0) dims[d] = 1;
    if (!dims.empty() && (given != shapes.end() || vi.dims[0] < 0)) dims[0] = batch;
    out.push_back(at::zeros(dims, at::TensorOptions().dtype(scalar_type_for(vi.dtype, vi.name))));
  }
  return out;
}

void annotate_macs(Executor& ex, std::vector<LayerInfo>& layers, const InputShapes& shapes) {
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
    ex.run(dummy_inputs(g, 1, shapes));
  } catch (const Error& e) {
    for (int id : ids) ex.remove_hook(id);
    std::string unknown = unknown_dims(g, shapes);
    if (unknown.empty()) throw;
    std::string first = g.inputs.empty() ? "x" : g.inputs[0].name;
    throw Error(e.kind(), detail::concat(e.what(), " [the shape pass ran with unknown input dims set to 1: ",
                                         unknown, "; give real sizes with --input-shape ", first,
                                         ":1,3,224,224 (one per input) or with --data]"));
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
    } else if (L.op == "LSTM" || L.op == "GRU" || L.op == "RNN") {
      // The input projection W [dirs, gates*H, In] applied to every step of X [T, N, In] (or
      // [N, T, In]): X's elements x dirs*gates*H per sample (the recurrence on R is not counted).
      L.macs = ws.size() == 3 ? in_numel * ws[0] * ws[1] : 0;
    } else {
      L.macs = 0;  // Gather: lookups, no arithmetic
    }
  }
}

}  // namespace mixq
