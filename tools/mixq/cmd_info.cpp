// mixq info MODEL: the quantizable layers with op, weight shape, params and MACs; --ops lists the
// operators mixq supports.
#include <cstdio>
#include <iostream>
#include <sstream>

#include <set>

#include "api/info.h"
#include "common.h"
#include "mixq/error.h"

namespace mixq::cli {

namespace {
std::string shape_str(const nlohmann::json& s) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "," : "") << s[i].get<int64_t>();
  os << ']';
  return os.str();
}

void print_units(const nlohmann::json& j) {
  const auto& units = j["units"];
  const std::set<std::string> pinned = j["pinned"].get<std::set<std::string>>();
  std::printf("%s: %zu units (BatchNorm folded)\n\n", j["model"].get<std::string>().c_str(), units.size());
  int i = 0;
  for (const auto& u : units) {
    std::string ins, outs;
    for (const auto& v : u["inputs"]) ins += (ins.empty() ? "" : ", ") + v.get<std::string>();
    for (const auto& v : u["outputs"]) outs += (outs.empty() ? "" : ", ") + v.get<std::string>();
    std::printf("%-3d %-18s %-34s %2zu layers %3zu nodes  %s -> %s\n", i++, u["kind"].get<std::string>().c_str(),
                u["name"].get<std::string>().substr(0, 34).c_str(), u["layers"].size(), u["nodes"].get<size_t>(),
                ins.c_str(), outs.c_str());
    for (const auto& l : u["layers"])
      std::printf("      %s%s\n", l.get<std::string>().c_str(), pinned.count(l) ? "  (pinned)" : "");
  }
}

void print_info(const nlohmann::json& j) {
  std::printf("%s: opset %lld, %zu nodes, producer '%s'\n", j["model"].get<std::string>().c_str(),
              (long long)j["opset"].get<int64_t>(), j["nodes"].get<size_t>(), j["producer"].get<std::string>().c_str());
  for (const auto& v : j["io"])
    std::printf("%-6s %s: %s\n", v["kind"].get<std::string>().c_str(), v["name"].get<std::string>().c_str(),
                v["type"].get<std::string>().c_str());
  std::printf("\n%-4s %-40s %-14s %-18s %10s %12s\n", "#", "layer", "op", "weight", "params", "MACs");
  int i = 0;
  for (const auto& L : j["layers"])
    std::printf("%-4d %-40s %-14s %-18s %10lld %12lld\n", i++, L["name"].get<std::string>().substr(0, 40).c_str(),
                L["op"].get<std::string>().c_str(), shape_str(L["weight_shape"]).c_str(),
                (long long)L["params"].get<int64_t>(), (long long)L["macs"].get<int64_t>());
  for (const auto& [name, dims] : j["input_shapes"].items())
    std::printf("shape pass: input %s = %s\n", name.c_str(), shape_str(dims).c_str());
  const std::string unknown = j["unknown_dims"], note = j["shape_error"];
  if (!unknown.empty())
    std::printf("unknown input dims (set to 1 for the shape pass): %s; give them with --input-shape or --data\n",
                unknown.c_str());
  if (!note.empty()) std::printf("MACs unavailable: %s\n", note.c_str());
  std::printf("\n%zu quantizable layers, %lld params (%lld float params in the model), %lld MACs per sample%s\n",
              j["layers"].size(), (long long)j["params"].get<int64_t>(), (long long)j["float_params"].get<int64_t>(),
              j["macs"].is_null() ? 0LL : (long long)j["macs"].get<int64_t>(), note.empty() ? "" : " (unknown: see above)");
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
      const nlohmann::json j = supported_ops();
      if (o->g.json) print_json(j);
      else
        for (const auto& r : j["ops"])
          std::printf("%-24s opset %d-%d\n", r["op"].get<std::string>().c_str(), r["since"].get<int>(), r["until"].get<int>());
      return 0;
    }
    MIXQ_CHECK(!o->model.empty(), ErrorKind::kInvalidArgument, "info needs a MODEL (or --ops)");
    if (o->blocks) {
      const nlohmann::json j = model_units(o->model);
      if (o->g.json) print_json({{"model", j["model"]}, {"units", j["units"]}});
      else print_units(j);
      return 0;
    }
    nlohmann::json j = model_info(InfoOptions{o->model, o->data, o->pre, o->input_shapes});
    if (o->g.json) {
      j.erase("io");
      j.erase("producer");
      print_json(j);
    } else {
      print_info(j);
    }
    return 0;
  };
}

}  // namespace mixq::cli
