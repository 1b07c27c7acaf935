#include "graph/blocks.h"

#include <algorithm>
#include <map>

namespace mixq {

namespace {

const std::set<std::string>& activation_ops() {
  static const std::set<std::string> ops = {"Relu", "Clip", "LeakyRelu", "PRelu", "Sigmoid", "HardSigmoid",
                                            "HardSwish", "Tanh", "Elu", "Selu", "Softplus", "Gelu", "Mish"};
  return ops;
}

struct Segment {
  std::vector<int> nodes;
  std::vector<std::string> layers;
  bool residual = false;   // the segment's entry value branches and is merged back by an add
  bool attention = false;  // Softmax or activation x activation MatMul
  bool ends_in_activation = false;
  bool excluded = false;
  bool depthwise = false;
};

// Values that depend on a graph input (everything else is constant-foldable).
std::set<std::string> dynamic_values(const Graph& g, std::vector<char>& node_dynamic) {
  std::set<std::string> dyn;
  for (const auto& in : g.inputs) dyn.insert(in.name);
  node_dynamic.assign(g.nodes.size(), 0);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    bool d = std::any_of(n.inputs.begin(), n.inputs.end(), [&](const std::string& v) { return dyn.count(v) != 0; });
    if (!d) continue;
    node_dynamic[i] = 1;
    for (const auto& o : n.outputs)
      if (!o.empty()) dyn.insert(o);
  }
  return dyn;
}

std::string common_prefix_name(const std::vector<std::string>& names) {
  if (names.empty()) return "";
  std::string p = names[0];
  for (const auto& n : names) {
    size_t k = 0;
    while (k < p.size() && k < n.size() && p[k] == n[k]) ++k;
    p.resize(k);
  }
  if (names.size() > 1) {  // cut back to a path separator so the name is a scope, not a fragment
    size_t slash = p.find_last_of("/.");
    if (slash != std::string::npos && slash > 0) p.resize(slash);
  }
  return p;
}

void finish_unit(const Graph& g, const std::set<std::string>& dyn, const std::vector<int>& node_unit, int id,
                 Unit& u) {
  std::set<std::string> produced, seen_in;
  for (int i : u.nodes)
    for (const auto& o : g.nodes[static_cast<size_t>(i)].outputs)
      if (!o.empty()) produced.insert(o);
  for (int i : u.nodes)
    for (const auto& v : g.nodes[static_cast<size_t>(i)].inputs)
      if (!v.empty() && dyn.count(v) && !produced.count(v) && seen_in.insert(v).second) u.inputs.push_back(v);
  std::set<std::string> graph_outputs;
  for (const auto& o : g.outputs) graph_outputs.insert(o.name);
  std::set<std::string> out_seen;
  for (int i : u.nodes)
    for (const auto& o : g.nodes[static_cast<size_t>(i)].outputs) {
      if (o.empty()) continue;
      bool read_outside = graph_outputs.count(o) != 0;
      for (size_t j = 0; j < g.nodes.size() && !read_outside; ++j) {
        if (node_unit[j] == id) continue;
        const auto& ins = g.nodes[j].inputs;
        read_outside = std::find(ins.begin(), ins.end(), o) != ins.end();
      }
      if (read_outside && out_seen.insert(o).second) u.outputs.push_back(o);
    }
  u.name = common_prefix_name(u.layers);
  if (u.name.empty()) u.name = "unit" + std::to_string(id);
}

}  // namespace

const char* unit_kind_name(UnitKind k) {
  switch (k) {
    case UnitKind::kLayer: return "layer";
    case UnitKind::kChain: return "chain";
    case UnitKind::kResidual: return "residual";
    case UnitKind::kInvertedResidual: return "inverted_residual";
    case UnitKind::kAttention: return "attention";
    case UnitKind::kTransformer: return "transformer";
  }
  return "?";
}

std::vector<Unit> partition_units(const Graph& g, const std::vector<LayerInfo>& layers,
                                  const std::set<std::string>& exclude) {
  std::vector<char> node_dynamic;
  const std::set<std::string> dyn = dynamic_values(g, node_dynamic);
  std::map<std::string, const LayerInfo*> layer_of;
  for (const auto& L : layers) layer_of[L.node] = &L;

  std::vector<int> order;  // dynamic nodes in topological order
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (node_dynamic[i]) order.push_back(static_cast<int>(i));
  const int m = static_cast<int>(order.size());

  // Position of the producer and of the last reader of every dynamic value.
  std::map<std::string, int> produced_at, last_read;
  for (const auto& in : g.inputs) produced_at[in.name] = -1;
  for (int p = 0; p < m; ++p) {
    const Node& n = g.nodes[static_cast<size_t>(order[static_cast<size_t>(p)])];
    for (const auto& v : n.inputs)
      if (dyn.count(v)) last_read[v] = p;
    for (const auto& o : n.outputs)
      if (!o.empty()) produced_at[o] = p;
  }
  for (const auto& o : g.outputs) last_read[o.name] = m;  // graph outputs live to the end
  // live[p]: dynamic values alive between position p and p + 1 (difference array).
  std::vector<int> delta(static_cast<size_t>(m) + 2, 0);
  for (const auto& [v, p] : produced_at) {
    auto it = last_read.find(v);
    if (it == last_read.end() || it->second <= p) continue;
    delta[static_cast<size_t>(p + 1)] += 1;  // alive for positions p .. last-1
    delta[static_cast<size_t>(it->second + 1)] -= 1;
  }
  std::vector<Segment> segs(1);
  int live = delta[0];
  for (int p = 0; p < m; ++p) {
    live += delta[static_cast<size_t>(p + 1)];
    segs.back().nodes.push_back(order[static_cast<size_t>(p)]);
    if (live <= 1 && p + 1 < m) segs.emplace_back();
  }

  // Describe the segments.
  for (auto& s : segs) {
    std::set<std::string> inside;
    for (int i : s.nodes)
      for (const auto& o : g.nodes[static_cast<size_t>(i)].outputs) inside.insert(o);
    std::map<std::string, int> outside_reads;
    bool has_add = false;
    int last_layer_pos = -1;
    for (size_t k = 0; k < s.nodes.size(); ++k) {
      const Node& n = g.nodes[static_cast<size_t>(s.nodes[k])];
      auto it = layer_of.find(n.name);
      if (it != layer_of.end()) {
        s.layers.push_back(n.name);
        last_layer_pos = static_cast<int>(k);
        if (exclude.count(n.name)) s.excluded = true;
        if (n.op_type == "Conv") {
          const Attribute* grp = n.attr("group");
          if (grp && grp->i > 1) s.depthwise = true;
        }
      }
      if (n.op_type == "Add" || n.op_type == "Sum") has_add = true;
      if (n.op_type == "Softmax") s.attention = true;
      if (n.op_type == "MatMul" && n.inputs.size() == 2 && dyn.count(n.inputs[0]) && dyn.count(n.inputs[1]))
        s.attention = true;
      for (const auto& v : n.inputs)
        if (dyn.count(v) && !inside.count(v)) ++outside_reads[v];
    }
    bool branches = std::any_of(outside_reads.begin(), outside_reads.end(), [](const auto& kv) { return kv.second > 1; });
    s.residual = branches && has_add;
    // An activation after the last layer (or anywhere, in a segment without layers: it is merged
    // into the segment before it below).
    for (size_t k = static_cast<size_t>(last_layer_pos + 1); k < s.nodes.size(); ++k)
      if (activation_ops().count(g.nodes[static_cast<size_t>(s.nodes[k])].op_type)) s.ends_in_activation = true;
  }

  // Merge 1: segments without layers join their neighbour.
  std::vector<Segment> a;
  for (auto& s : segs) {
    if (s.layers.empty() && !a.empty()) {
      auto& prev = a.back();
      prev.nodes.insert(prev.nodes.end(), s.nodes.begin(), s.nodes.end());
      prev.residual = prev.residual || s.residual;
      prev.ends_in_activation = prev.ends_in_activation || s.ends_in_activation;
      continue;
    }
    if (!a.empty() && a.back().layers.empty()) {  // a layer-less head joins the first real segment
      Segment head = std::move(a.back());
      a.pop_back();
      s.nodes.insert(s.nodes.begin(), head.nodes.begin(), head.nodes.end());
    }
    a.push_back(std::move(s));
  }

  // Merge 2 and 3: transformer blocks and inverted-residual chains.
  std::vector<Unit> units;
  std::vector<Segment> merged;
  std::vector<UnitKind> kinds;
  for (size_t i = 0; i < a.size();) {
    Segment s = a[i];
    UnitKind kind = s.layers.size() == 1 ? UnitKind::kLayer : UnitKind::kChain;
    if (s.residual) kind = s.depthwise ? UnitKind::kInvertedResidual : UnitKind::kResidual;
    if (s.attention) kind = UnitKind::kAttention;
    size_t next = i + 1;
    if (s.attention && !s.excluded && next < a.size() && a[next].residual && !a[next].attention &&
        !a[next].excluded) {
      s.nodes.insert(s.nodes.end(), a[next].nodes.begin(), a[next].nodes.end());
      s.layers.insert(s.layers.end(), a[next].layers.begin(), a[next].layers.end());
      kind = UnitKind::kTransformer;
      ++next;
    } else if (!s.residual && !s.attention && !s.excluded && s.layers.size() == 1 && s.ends_in_activation) {
      size_t j = i + 1;
      while (j < a.size() && !a[j].residual && !a[j].attention && !a[j].excluded && a[j].layers.size() == 1 &&
             a[j].ends_in_activation)
        ++j;
      if (j < a.size() && j > i && !a[j].residual && !a[j].attention && !a[j].excluded && a[j].layers.size() == 1) {
        for (size_t k = i + 1; k <= j; ++k) {
          s.nodes.insert(s.nodes.end(), a[k].nodes.begin(), a[k].nodes.end());
          s.layers.insert(s.layers.end(), a[k].layers.begin(), a[k].layers.end());
        }
        kind = UnitKind::kInvertedResidual;
        next = j + 1;
      }
    }
    merged.push_back(std::move(s));
    kinds.push_back(kind);
    i = next;
  }
  std::vector<int> node_unit(g.nodes.size(), -1);
  for (size_t u = 0; u < merged.size(); ++u)
    for (int i : merged[u].nodes) node_unit[static_cast<size_t>(i)] = static_cast<int>(u);
  for (size_t u = 0; u < merged.size(); ++u) {
    Unit unit;
    unit.kind = kinds[u];
    unit.nodes = merged[u].nodes;
    std::sort(unit.nodes.begin(), unit.nodes.end());
    unit.layers = merged[u].layers;
    finish_unit(g, dyn, node_unit, static_cast<int>(u), unit);
    units.push_back(std::move(unit));
  }
  return units;
}

std::vector<Unit> layer_units(const Graph& g, const std::vector<LayerInfo>& layers) {
  std::vector<char> node_dynamic;
  const std::set<std::string> dyn = dynamic_values(g, node_dynamic);
  std::map<std::string, std::vector<int>> readers;
  std::map<std::string, int> index;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    index[g.nodes[i].name] = static_cast<int>(i);
    for (const auto& v : g.nodes[i].inputs) readers[v].push_back(static_cast<int>(i));
  }
  std::set<std::string> graph_outputs;
  for (const auto& o : g.outputs) graph_outputs.insert(o.name);
  std::vector<Unit> units;
  std::vector<int> node_unit(g.nodes.size(), -1);
  for (const auto& L : layers) {
    auto it = index.find(L.node);
    if (it == index.end() || !node_dynamic[static_cast<size_t>(it->second)]) continue;
    Unit u;
    u.kind = UnitKind::kLayer;
    u.nodes = {it->second};
    u.layers = {L.node};
    const auto& rd = readers[L.output];
    if (rd.size() == 1 && !graph_outputs.count(L.output) &&
        activation_ops().count(g.nodes[static_cast<size_t>(rd[0])].op_type))
      u.nodes.push_back(rd[0]);
    units.push_back(std::move(u));
  }
  for (size_t k = 0; k < units.size(); ++k) {
    std::fill(node_unit.begin(), node_unit.end(), -1);
    for (int i : units[k].nodes) node_unit[static_cast<size_t>(i)] = static_cast<int>(k);
    finish_unit(g, dyn, node_unit, static_cast<int>(k), units[k]);
    units[k].name = units[k].layers[0];
  }
  return units;
}

}  // namespace mixq
