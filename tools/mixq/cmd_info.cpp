// mixq info MODEL: the quantizable layers with op, weight shape, params and MACs; --ops lists the
// operators mixq supports.
#include <cstdio>
#include <iostream>
#include <sstream>

#include "common.h"
#include "exec/executor.h"
#include "exec/shapes.h"
#include "graph/blocks.h"
#include "graph/fold_bn.h"
#include "graph/layers.h"
#include "data/dataset.h"
#include "exec/fold_constants.h"

namespace mixq::cli {

namespace {
std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "," : "") << s[i];
  os << ']';
  return os.str();
}

int print_blocks(const std::string& path, Graph g, bool json) {
  fold_batchnorm(g);
  auto layers = find_layers(g);
  std::set<std::string> pinned;
  // As make_plan pins: first and last layer, by role (never an embedding table).
  if (!layers.empty())
    for (const LayerInfo* l : {&layers.front(), &layers.back()})
      if (l->op != "Gather") pinned.insert(l->node);
  auto units = partition_units(g, layers, pinned);
  nlohmann::json ju = nlohmann::json::array();
  for (const auto& u : units)
    ju.push_back({{"name", u.name}, {"kind", unit_kind_name(u.kind)}, {"layers", u.layers},
                  {"nodes", u.nodes.size()}, {"inputs", u.inputs}, {"outputs", u.outputs}});
  if (json) {
    print_json({{"model", path}, {"units", ju}});
    return 0;
  }
  std::printf("%s: %zu units (BatchNorm folded)\n\n", path.c_str(), units.size());
  int i = 0;
  for (const auto& u : units) {
    std::string ins, outs;
    for (const auto& v : u.inputs) ins += (ins.empty() ? "" : ", ") + v;
    for (const auto& v : u.outputs) outs += (outs.empty() ? "" : ", ") + v;
    std::printf("%-3d %-18s %-34s %2zu layers %3zu nodes  %s -> %s\n", i++, unit_kind_name(u.kind),
                u.name.substr(0, 34).c_str(), u.layers.size(), u.nodes.size(), ins.c_str(), outs.c_str());
    for (const auto& l : u.layers) std::printf("      %s%s\n", l.c_str(), pinned.count(l) ? "  (pinned)" : "");
  }
  return 0;
}

}  // namespace

RunFn setup_info(CLI::App& sub) {
  struct Opts {
    GlobalOptions g;
    std::string model, data;
    bool ops = false, blocks = false;
    PreprocessOverride pre;
    std::vector<std::string> input_shapes;
  };
  auto o = std::make_shared<Opts>();
  sub.add_option("model", o->model, "ONNX model file");
  sub.add_flag("--ops", o->ops, "List the supported ONNX operators and opset ranges instead");
  sub.add_flag("--blocks", o->blocks,
               "Show the reconstruction units (residual / inverted-residual / transformer blocks, single "
               "layers) of the BatchNorm-folded graph; the first and last layer stay alone (pinned)");
  sub.add_option("-d,--data", o->data, "Take the shapes of dynamic input axes from this dataset's first sample");
  add_data_options(sub, o->pre, &o->input_shapes);
  add_global_options(sub, o->g);
  return [o]() {
    apply_global_options(o->g);
    if (o->ops) {
      nlohmann::json rows = nlohmann::json::array();
      for (const auto& r : op_table()) {
        rows.push_back({{"op", r.op_type}, {"since", r.since}, {"until", r.until}});
        if (!o->g.json) std::printf("%-24s opset %d-%d\n", r.op_type, r.since, r.until);
      }
      if (o->g.json) print_json({{"ops", rows}});
      return 0;
    }
    MIXQ_CHECK(!o->model.empty(), ErrorKind::kInvalidArgument, "info needs a MODEL (or --ops)");
    Graph g = load_model(o->model);
    if (o->blocks) return print_blocks(o->model, g, o->g.json);
    auto layers = find_layers(g);
    InputShapes shapes;
    if (!o->data.empty()) shapes = input_shapes_of(g, *open_dataset(o->data, g.inputs, o->pre.over(preprocess_from_metadata(g))));
    for (const auto& spec : o->input_shapes) parse_input_shape(spec, g, shapes);
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
    if (o->g.json) {
      std::vector<std::string> in;
      for (const auto& vi : g.inputs) in.push_back(vi.str());
      nlohmann::json shapes_json = nlohmann::json::object();
      for (const auto& [name, dims] : shapes) shapes_json[name] = dims;
      print_json({{"model", o->model}, {"opset", g.opset()}, {"nodes", g.nodes.size()},
                  {"inputs", in}, {"layers", jl}, {"params", params}, {"macs", shape_note.empty() ? nlohmann::json(macs) : nlohmann::json(nullptr)},
                  {"float_params", all_params}, {"input_shapes", shapes_json},
                  {"unknown_dims", unknown}, {"shape_error", shape_note}});
      return 0;
    }
    std::printf("%s: opset %lld, %zu nodes, producer '%s'\n", o->model.c_str(), (long long)g.opset(),
                g.nodes.size(), g.producer.c_str());
    for (const auto& vi : g.inputs) std::printf("input  %s: %s\n", vi.name.c_str(), vi.str().c_str());
    for (const auto& vi : g.outputs) std::printf("output %s: %s\n", vi.name.c_str(), vi.str().c_str());
    std::printf("\n%-4s %-40s %-14s %-18s %10s %12s\n", "#", "layer", "op", "weight", "params", "MACs");
    int i = 0;
    for (const auto& L : layers)
      std::printf("%-4d %-40s %-14s %-18s %10lld %12lld\n", i++, L.node.substr(0, 40).c_str(),
                  L.op.c_str(), shape_str(L.weight_shape).c_str(), (long long)L.params, (long long)L.macs);
    for (const auto& [name, dims] : shapes)
      std::printf("shape pass: input %s = %s\n", name.c_str(), shape_str(dims).c_str());
    if (!unknown.empty())
      std::printf("unknown input dims (set to 1 for the shape pass): %s; give them with --input-shape or --data\n",
                  unknown.c_str());
    if (!shape_note.empty()) std::printf("MACs unavailable: %s\n", shape_note.c_str());
    std::printf("\n%zu quantizable layers, %lld params (%lld float params in the model), %lld MACs per sample%s\n",
                layers.size(), (long long)params, (long long)all_params, (long long)macs,
                shape_note.empty() ? "" : " (unknown: see above)");
    return 0;
  };
}

}  // namespace mixq::cli
