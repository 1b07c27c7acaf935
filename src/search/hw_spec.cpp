#include "search/hw_spec.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <numeric>
#include <set>

#include "core/json_int.h"
#include "mixq/error.h"

namespace mixq {

namespace {

std::string join(const std::vector<int>& v) {
  std::string s;
  for (int x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s;
}

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return v.empty() || std::find(v.begin(), v.end(), x) != v.end();
}

struct UnionFind {
  std::vector<int> p;
  explicit UnionFind(size_t n) : p(n) { std::iota(p.begin(), p.end(), 0); }
  int find(int x) { return p[x] == x ? x : p[x] = find(p[x]); }
  void unite(int a, int b) { p[find(a)] = find(b); }
};

// Ops a value passes through unchanged in precision terms (one data input, elementwise or
// layout-only), when tracing a layer's output to the Add/Concat that consumes it.
bool passthrough(const std::string& op) {
  static const std::set<std::string> ops = {"Relu", "Clip", "BatchNormalization", "Identity", "LeakyRelu",
                                            "Sigmoid", "HardSigmoid", "HardSwish", "Reshape", "Flatten",
                                            "Transpose", "Squeeze", "Unsqueeze", "Mul", "Div", "Cast"};
  return ops.count(op) != 0;
}

}  // namespace

const OpRule& HwSpec::rule(const std::string& op) const {
  auto it = ops.find(op);
  if (it != ops.end()) return it->second;
  it = ops.find("default");
  MIXQ_CHECK(it != ops.end(), ErrorKind::kInvalidArgument, path, ": the hardware spec has no rule for op '", op,
             "' and no \"default\" rule; add one under \"ops\"");
  return it->second;
}

HwSpec hw_spec_from_json(const nlohmann::json& j, const std::string& where) {
  HwSpec hw;
  hw.path = where;
  std::string current = "(top level)";
  try {
    MIXQ_CHECK(j.is_object() && j.contains("mixq_hw_version"), ErrorKind::kInvalidArgument, where,
               ": not a mixq hardware spec (no 'mixq_hw_version'); see docs/hwspec.md");
    MIXQ_CHECK(json_int<int>(j.at("mixq_hw_version"), "mixq_hw_version") == 1, ErrorKind::kInvalidArgument, where,
               ": hardware spec version ", j.at("mixq_hw_version").dump(), " is not supported (this mixq reads 1)");
    hw.name = j.value("name", where);
    MIXQ_CHECK(j.contains("ops") && j.at("ops").is_object() && !j.at("ops").empty(), ErrorKind::kInvalidArgument,
               where, ": 'ops' must be a non-empty object of op type -> rule");
    for (const auto& [op, r] : j.at("ops").items()) {
      current = "ops." + op;
      OpRule rule;
      rule.weight_bits = json_ints(r.at("weight_bits"), "weight_bits");
      rule.act_bits = json_ints(r.at("act_bits"), "act_bits");
      rule.granularity = r.value("granularity", std::vector<std::string>{});
      rule.symmetry = r.value("symmetry", std::vector<std::string>{});
      MIXQ_CHECK(!rule.weight_bits.empty() && !rule.act_bits.empty(), ErrorKind::kInvalidArgument, where, ": ",
                 current, ": weight_bits and act_bits must list at least one bit-width");
      for (int b : rule.weight_bits)
        MIXQ_CHECK((b >= 2 && b <= 8) || b == 16, ErrorKind::kInvalidArgument, where, ": ", current, ": weight bits ",
                   b, " is not possible (2-8 or 16)");
      for (int b : rule.act_bits)
        MIXQ_CHECK((b >= 2 && b <= 8) || b == 16, ErrorKind::kInvalidArgument, where, ": ", current, ": act bits ", b,
                   " is not possible (2-8 or 16)");
      for (const auto& gname : rule.granularity) parse_granularity(gname);  // throws on unknown names
      for (const auto& s : rule.symmetry)
        MIXQ_CHECK(s == "symmetric" || s == "asymmetric", ErrorKind::kInvalidArgument, where, ": ", current,
                   ": symmetry '", s, "' must be 'symmetric' or 'asymmetric'");
      std::sort(rule.weight_bits.begin(), rule.weight_bits.end());
      std::sort(rule.act_bits.begin(), rule.act_bits.end());
      hw.ops[op] = rule;
    }
    current = "shared";
    if (j.contains("shared")) {
      const auto& s = j.at("shared");
      hw.share_add_concat = s.value("add_concat_inputs", false);
      hw.groups = s.value("groups", std::vector<std::vector<std::string>>{});
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::kInvalidArgument, where + ": malformed hardware spec at " + current + ": " + e.what() +
                                                 " (see docs/hwspec.md)");
  }
  return hw;
}

HwSpec load_hw_spec(const std::string& path) {
  std::ifstream f(path);
  MIXQ_CHECK(f.good(), ErrorKind::kIO, "cannot open hardware spec '", path, "'");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kInvalidArgument, path + ": not valid JSON: " + e.what());
  }
  return hw_spec_from_json(j, path);
}

std::vector<int> allowed_wbits(const HwSpec& hw, const LayerPlan& L) { return hw.rule(L.op).weight_bits; }

std::vector<std::vector<int>> shared_groups(const HwSpec& hw, const Graph& g, const QuantPlan& plan) {
  UnionFind uf(plan.layers.size());
  std::map<std::string, int> index;
  for (size_t i = 0; i < plan.layers.size(); ++i) index[plan.layers[i].name] = static_cast<int>(i);
  for (const auto& grp : hw.groups) {
    int first = -1;
    for (const auto& name : grp) {
      auto it = index.find(name);
      MIXQ_CHECK(it != index.end(), ErrorKind::kInvalidArgument, hw.path, ": shared group names layer '", name,
                 "', which is not a quantizable layer of the model (see `mixq info`)");
      if (first < 0) first = it->second; else uf.unite(first, it->second);
    }
  }
  if (hw.share_add_concat) {
    std::map<std::string, std::vector<const Node*>> readers;
    for (const auto& n : g.nodes)
      for (const auto& in : n.inputs) readers[in].push_back(&n);
    std::map<std::string, int> meet;  // Add/Concat node name -> first layer reaching it
    for (size_t i = 0; i < plan.layers.size(); ++i) {
      const Node* layer = nullptr;
      for (const auto& n : g.nodes)
        if (n.name == plan.layers[i].name) layer = &n;
      if (!layer || layer->outputs.empty()) continue;
      // Follow single-reader pass-through chains from the layer output.
      std::vector<std::string> frontier = {layer->outputs[0]};
      std::set<std::string> seen;
      while (!frontier.empty()) {
        std::string v = frontier.back();
        frontier.pop_back();
        if (!seen.insert(v).second) continue;
        for (const Node* r : readers[v]) {
          if (r->op_type == "Add" || r->op_type == "Concat" || r->op_type == "Sum") {
            auto it = meet.find(r->name);
            if (it == meet.end()) meet[r->name] = static_cast<int>(i); else uf.unite(it->second, static_cast<int>(i));
          } else if (passthrough(r->op_type) && !r->outputs.empty()) {
            frontier.push_back(r->outputs[0]);
          }
        }
      }
    }
  }
  std::map<int, std::vector<int>> by_root;
  for (size_t i = 0; i < plan.layers.size(); ++i) by_root[uf.find(static_cast<int>(i))].push_back(static_cast<int>(i));
  std::vector<std::vector<int>> out;
  for (auto& [r, v] : by_root) out.push_back(v);
  std::sort(out.begin(), out.end());
  return out;
}

void check_plan_against_spec(const QuantPlan& plan, const HwSpec& hw, const Graph& g) {
  for (const auto& L : plan.layers) {
    const OpRule& r = hw.rule(L.op);
    const std::string at = "layer '" + L.name + "' (" + L.op + ")";
    const std::string spec = " by hardware spec " + hw.path;
    const auto& wb = r.weight_bits;
    MIXQ_CHECK(std::find(wb.begin(), wb.end(), L.weight_scheme.bits) != wb.end(), ErrorKind::kInvalidArgument, at,
               ": weight bits ", L.weight_scheme.bits, " are not allowed", spec, " (allowed: ", join(wb),
               "); change the plan or the spec");
    if (L.quantize_input)
      MIXQ_CHECK(std::find(r.act_bits.begin(), r.act_bits.end(), L.input_scheme.bits) != r.act_bits.end(),
                 ErrorKind::kInvalidArgument, at, ": activation bits ", L.input_scheme.bits, " are not allowed", spec,
                 " (allowed: ", join(r.act_bits), "); pass --abits with an allowed value");
    MIXQ_CHECK(contains(r.granularity, granularity_name(L.weight_scheme.granularity)), ErrorKind::kInvalidArgument,
               at, ": weight granularity ", granularity_name(L.weight_scheme.granularity), " is not allowed", spec,
               "; pass --granularity with an allowed one");
    MIXQ_CHECK(contains(r.symmetry, L.weight_scheme.symmetric ? "symmetric" : "asymmetric"),
               ErrorKind::kInvalidArgument, at, ": ", L.weight_scheme.symmetric ? "symmetric" : "asymmetric",
               " weights are not allowed", spec, "; toggle --symmetric-weights");
  }
  for (const auto& grp : shared_groups(hw, g, plan))
    for (int i : grp) {
      const LayerPlan& a = plan.layers[grp[0]];
      const LayerPlan& b = plan.layers[i];
      MIXQ_CHECK(a.weight_scheme.bits == b.weight_scheme.bits, ErrorKind::kInvalidArgument, "layers '", a.name,
                 "' and '", b.name, "' must share one weight precision under hardware spec ", hw.path, " but have ",
                 a.weight_scheme.bits, " and ", b.weight_scheme.bits, " bits");
    }
}

void fit_plan_to_spec(QuantPlan& plan, const HwSpec& hw) {
  auto fit = [](int b, const std::vector<int>& allowed) {
    for (int a : allowed)
      if (a >= b) return a;
    return allowed.back();
  };
  for (auto& L : plan.layers) {
    const OpRule& r = hw.rule(L.op);
    if (L.quantize_input) L.input_scheme.bits = fit(L.input_scheme.bits, r.act_bits);
    L.weight_scheme.bits = fit(L.weight_scheme.bits, r.weight_bits);
  }
  unify_shared_inputs(plan);
  update_cost(plan);
}

}  // namespace mixq
