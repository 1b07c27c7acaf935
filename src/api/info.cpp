#include "api/info.h"

#include <ATen/ATen.h>

#include <set>

#include "exec/executor.h"
#include "exec/fold_constants.h"
#include "exec/kernel.h"
#include "exec/shapes.h"
#include "graph/blocks.h"
#include "graph/fold_bn.h"
#include "graph/layers.h"
#include "mixq/error.h"

namespace mixq {

nlohmann::json model_info(const InfoOptions& o) {
  Graph g = load_model(o.model);
  auto layers = find_layers(g);
  InputShapes shapes;
  if (!o.data.empty()) shapes = input_shapes_of(g, *open_dataset(o.data, g.inputs, o.pre.over(preprocess_from_metadata(g))));
  for (const auto& spec : o.input_shapes) parse_input_shape(spec, g, shapes);
  const std::string unknown = unknown_dims(g, shapes);
  std::string shape_note;
  {
    Executor ex(g);
    try {
      annotate_macs(ex, layers, shapes);
    } catch (const Error& e) {
      // Dynamic axes set to 1 can make a model fail (a pooling window larger than the input):
      // the layers are still listed; MACs and output shapes need the real sizes.
      if (unknown.empty()) throw;
      shape_note = e.what();
      for (auto& L : layers) L.macs = 0, L.out_shape.clear();
    }
  }
  int64_t params = 0, macs = 0, all_params = 0;
  for (const auto& kv : g.initializers)
    if (at::isFloatingType(kv.second.scalar_type())) all_params += kv.second.numel();
  nlohmann::json jl = nlohmann::json::array();
  for (const auto& L : layers) {
    params += L.params;
    macs += L.macs;
    jl.push_back({{"name", L.node}, {"op", L.op}, {"weight", L.weight}, {"weight_shape", L.weight_shape},
                  {"bias", L.bias}, {"params", L.params}, {"macs", L.macs}, {"output_shape", L.out_shape}});
  }
  nlohmann::json in = nlohmann::json::array(), io = nlohmann::json::array();
  for (const auto& vi : g.inputs) {
    in.push_back(vi.str());
    io.push_back({{"kind", "input"}, {"name", vi.name}, {"type", vi.str()}});
  }
  for (const auto& vi : g.outputs) io.push_back({{"kind", "output"}, {"name", vi.name}, {"type", vi.str()}});
  nlohmann::json shapes_json = nlohmann::json::object();
  for (const auto& [name, dims] : shapes) shapes_json[name] = dims;
  return {{"model", o.model}, {"opset", g.opset()}, {"nodes", g.nodes.size()}, {"producer", g.producer},
          {"inputs", in}, {"io", io}, {"layers", jl}, {"params", params},
          {"macs", shape_note.empty() ? nlohmann::json(macs) : nlohmann::json(nullptr)}, {"float_params", all_params},
          {"input_shapes", shapes_json}, {"unknown_dims", unknown}, {"shape_error", shape_note}};
}

nlohmann::json model_units(const std::string& path) {
  Graph g = load_model(path);
  fold_batchnorm(g);
  auto layers = find_layers(g);
  std::set<std::string> pinned;
  // As make_plan pins: first and last layer, by role (never an embedding table).
  if (!layers.empty())
    for (const LayerInfo* l : {&layers.front(), &layers.back()})
      if (l->op != "Gather") pinned.insert(l->node);
  nlohmann::json ju = nlohmann::json::array();
  for (const auto& u : partition_units(g, layers, pinned))
    ju.push_back({{"name", u.name}, {"kind", unit_kind_name(u.kind)}, {"layers", u.layers},
                  {"nodes", u.nodes.size()}, {"inputs", u.inputs}, {"outputs", u.outputs}});
  return {{"model", path}, {"units", ju}, {"pinned", pinned}};
}

nlohmann::json supported_ops() {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& r : op_table()) rows.push_back({{"op", r.op_type}, {"since", r.since}, {"until", r.until}});
  return {{"ops", rows}};
}

}  // namespace mixq
