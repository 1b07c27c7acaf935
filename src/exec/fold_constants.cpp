#include "exec/fold_constants.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "core/log.h"
#include "exec/kernel.h"

namespace mixq {

namespace {

// Ops whose output is not a function of their inputs.
bool is_random(const std::string& op) {
  static const std::set<std::string> random = {"RandomNormal", "RandomUniform", "RandomNormalLike",
                                               "RandomUniformLike", "Multinomial", "Bernoulli"};
  return random.count(op) != 0;
}

// The declared dims of a value (-1: unknown), or nullptr when its rank is unknown.
const std::vector<int64_t>* declared_dims(const Graph& g, const std::string& v) {
  for (const auto& vi : g.inputs)
    if (vi.name == v) return vi.has_shape ? &vi.dims : nullptr;
  auto it = g.value_info.find(v);
  if (it != g.value_info.end() && it->second.has_shape) return &it->second.dims;
  return nullptr;
}

// Shape(x) with opset-15 start/end: the dims it returns, -1 where unknown. Empty optional when
// x's rank is unknown.
std::optional<std::vector<int64_t>> shape_output(const Graph& g, const Node& n) {
  const auto* dims = declared_dims(g, n.inputs[0]);
  if (!dims) return std::nullopt;
  const int64_t rank = static_cast<int64_t>(dims->size());
  auto clamp = [&](int64_t i) { return std::max<int64_t>(0, std::min(rank, i < 0 ? i + rank : i)); };
  const Attribute* s = n.attr("start");
  const Attribute* e = n.attr("end");
  int64_t b = clamp(s ? s->i : 0), en = clamp(e ? e->i : rank);
  std::vector<int64_t> out;
  for (int64_t i = b; i < en; ++i) out.push_back((*dims)[i]);
  return out;
}

bool all_static(const std::vector<int64_t>& d) {
  return std::all_of(d.begin(), d.end(), [](int64_t x) { return x >= 0; });
}

at::Tensor int64_vector(const std::vector<int64_t>& v) {
  return at::tensor(v, at::TensorOptions().dtype(at::kLong)).clone();
}

}  // namespace

FoldStats fold_constants(Graph& g) {
  FoldStats st;
  c10::InferenceMode guard;
  std::set<std::string> graph_outputs;
  for (const auto& o : g.outputs) graph_outputs.insert(o.name);
  // Partially known Shape outputs (some dims symbolic): Gather can still pick static ones.
  std::map<std::string, std::vector<int64_t>> partial_shapes;

  std::vector<Node> kept;
  kept.reserve(g.nodes.size());
  for (auto& n : g.nodes) {
    auto keep = [&] { kept.push_back(std::move(n)); };
    bool feeds_output = std::any_of(n.outputs.begin(), n.outputs.end(),
                                    [&](const std::string& o) { return graph_outputs.count(o) != 0; });
    if (!n.domain.empty() || feeds_output || is_random(n.op_type) || n.outputs.empty()) {
      keep();
      continue;
    }
    // Shape of a statically shaped value; Gather(Shape(x), const) of static dims.
    if (n.op_type == "Shape" && !n.inputs.empty() && !g.is_initializer(n.inputs[0])) {
      auto dims = shape_output(g, n);
      if (dims && all_static(*dims)) {
        g.initializers[n.outputs[0]] = int64_vector(*dims);
        ++st.nodes, ++st.shape_nodes;
        continue;
      }
      if (dims) partial_shapes[n.outputs[0]] = *dims;
      keep();
      continue;
    }
    if (n.op_type == "Gather" && n.inputs.size() == 2 && partial_shapes.count(n.inputs[0]) &&
        g.is_initializer(n.inputs[1])) {
      const auto& dims = partial_shapes[n.inputs[0]];
      const at::Tensor idx = g.initializers.at(n.inputs[1]).to(at::kLong).contiguous();
      std::vector<int64_t> picked;
      bool ok = idx.dim() <= 1;
      for (int64_t k = 0; ok && k < idx.numel(); ++k) {
        int64_t i = idx.data_ptr<int64_t>()[k];
        if (i < 0) i += static_cast<int64_t>(dims.size());
        ok = i >= 0 && i < static_cast<int64_t>(dims.size()) && dims[i] >= 0;
        if (ok) picked.push_back(dims[i]);
      }
      if (ok) {
        at::Tensor t = int64_vector(picked);
        g.initializers[n.outputs[0]] = idx.dim() == 0 ? t.reshape({}) : t;
        ++st.nodes, ++st.shape_nodes;
        continue;
      }
      keep();
      continue;
    }
    bool all_const = std::all_of(n.inputs.begin(), n.inputs.end(),
                                 [&](const std::string& v) { return v.empty() || g.is_initializer(v); });
    const OpRow* row = all_const ? find_op(n.op_type, g.opset()) : nullptr;
    if (!row) {
      keep();
      continue;
    }
    try {
      NodeInfo info(g, n, g.opset());
      auto kernel = row->make(info);
      std::vector<at::Tensor> in, out(n.outputs.size());
      int64_t in_numel = 0;
      for (const auto& v : n.inputs) {
        in.push_back(v.empty() ? at::Tensor() : g.initializers.at(v));
        if (!v.empty()) in_numel += in.back().numel();
      }
      kernel->compute(in, out);
      bool small = true;
      for (size_t i = 0; i < out.size(); ++i) {
        if (n.outputs[i].empty()) continue;
        if (!out[i].defined()) small = false;
        else if (out[i].numel() > (int64_t(4) << 20) && out[i].numel() > 4 * in_numel) small = false;
      }
      if (!small) {
        keep();
        continue;
      }
      for (size_t i = 0; i < out.size(); ++i)
        if (!n.outputs[i].empty()) g.initializers[n.outputs[i]] = out[i].contiguous();
      ++st.nodes;
    } catch (const std::exception& e) {
      log::verbose("fold: " + g.describe(n) + " left to run time (" + e.what() + ")");
      keep();
    }
  }
  g.nodes = std::move(kept);

  // Initializers that nothing reads any more (the folded nodes' inputs).
  std::set<std::string> read(graph_outputs);
  for (const auto& n : g.nodes)
    for (const auto& v : n.inputs) read.insert(v);
  for (auto it = g.initializers.begin(); it != g.initializers.end();) {
    if (read.count(it->first)) {
      ++it;
    } else {
      it = g.initializers.erase(it);
      ++st.removed_initializers;
    }
  }
  // value_info of values that became initializers is no longer needed (and may disagree with
  // the folded tensor's dtype for exporters that declare it loosely).
  for (auto it = g.value_info.begin(); it != g.value_info.end();)
    it = g.initializers.count(it->first) ? g.value_info.erase(it) : std::next(it);
  return st;
}

Graph load_model(const std::string& path, const ImportOptions& opts) {
  Graph g = load_onnx(path, opts);
  FoldStats st = fold_constants(g);
  if (st.nodes)
    log::verbose("load: folded " + std::to_string(st.nodes) + " constant nodes (" +
                 std::to_string(st.shape_nodes) + " on static shapes) into initializers");
  return g;
}

}  // namespace mixq
