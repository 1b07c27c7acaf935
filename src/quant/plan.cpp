#include "quant/plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>

#include "core/json_int.h"
#include "core/atomic_file.h"
#include "mixq/error.h"
#include "quant/act_placement.h"

namespace mixq {

namespace {

int64_t num_scales(const LayerPlan& L) {
  const QScheme& s = L.weight_scheme;
  if (s.granularity == Granularity::kPerTensor) return 1;
  int64_t c = L.weight_shape.empty() ? 1 : L.weight_shape[static_cast<size_t>(s.axis)];
  if (s.granularity == Granularity::kPerChannel) return c;
  int64_t k = L.params / std::max<int64_t>(c, 1);
  return c * ((k + s.group_size - 1) / s.group_size);
}

nlohmann::json scheme_json(const QScheme& s, RangeMethod r, bool weight) {
  nlohmann::json j = {{"bits", s.bits}, {"symmetric", s.symmetric}, {"range", range_method_name(r)}};
  if (weight) {
    j["granularity"] = granularity_name(s.granularity);
    j["axis"] = s.axis;
    if (s.granularity == Granularity::kPerGroup) j["group_size"] = s.group_size;
    j["rounding"] = rounding_name(s.rounding);
  }
  return j;
}

bool valid_bits(int b) { return (b >= 2 && b <= 8) || b == 16; }

}  // namespace

int64_t weight_channels(const LayerPlan& L) {
  if (L.weight_shape.empty()) return 1;
  int64_t a = L.weight_scheme.axis < 0 ? L.weight_scheme.axis + int64_t(L.weight_shape.size()) : L.weight_scheme.axis;
  return a >= 0 && a < int64_t(L.weight_shape.size()) ? L.weight_shape[size_t(a)] : 1;
}

void set_channel_bits(LayerPlan& L, const std::vector<int>& bits) {
  if (bits.empty()) {
    L.channel_bits.clear();
    return;
  }
  const auto [lo, hi] = std::minmax_element(bits.begin(), bits.end());
  L.weight_scheme.bits = *hi;
  if (*lo == *hi) L.channel_bits.clear();
  else L.channel_bits = bits;
}

double mean_weight_bits(const LayerPlan& L) {
  if (L.channel_bits.empty()) return L.weight_scheme.bits;
  double s = 0;
  for (int b : L.channel_bits) s += b;
  return s / double(L.channel_bits.size());
}

const LayerPlan* QuantPlan::find(const std::string& name) const {
  for (const auto& L : layers)
    if (L.name == name) return &L;
  return nullptr;
}

bool is_dominant(double params, double total_params) { return total_params > 0 && params > 0.5 * total_params; }

QuantPlan make_plan(const Graph& g, const std::vector<LayerInfo>& layers, const PlanDefaults& d) {
  QuantPlan plan;
  double total_params = 0;
  for (const auto& info : layers) total_params += double(g.initializers.at(info.weight).numel());
  plan.model = g.source_path;
  std::set<std::string> layer_tensors;
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerInfo& info = layers[i];
    LayerPlan L;
    L.name = info.node;
    L.op = info.op;
    L.weight = info.weight;
    L.weight_shape = info.weight_shape;
    L.params = g.initializers.at(info.weight).numel();
    L.bias_params = info.bias.empty() ? 0 : g.initializers.at(info.bias).numel();
    L.macs = info.macs;
    L.pinned = d.pin_bits > 0 && (i == 0 || i + 1 == layers.size()) && !is_embedding_table(L) &&
               !is_dominant(double(L.params), total_params);
    L.weight_scheme.bits = L.pinned ? d.pin_bits : d.wbits;
    L.weight_scheme.symmetric = d.wsymmetric;
    L.weight_scheme.granularity = d.granularity;
    L.weight_scheme.group_size = d.group_size;
    L.weight_scheme.axis = info.channel_axis;
    L.weight_scheme.rounding = d.rounding;
    L.weight_range = d.weight_range;
    if (is_embedding_table(L) && L.weight_shape.size() == 2) L.embed = d.embed_scheme;
    L.input = info.op == "Gather" ? "" : info.input;  // Gather reads indices, not an activation
    L.quantize_input = !L.input.empty();
    L.input_scheme.bits = L.pinned ? std::max(d.pin_bits, d.abits) : d.abits;
    L.input_scheme.symmetric = !d.asymmetric_act;
    L.input_range = d.input_range;
    if (L.quantize_input && !L.pinned && L.input_scheme.bits == 8) L.input_sparq = d.act_sparq;
    layer_tensors.insert(info.weight);
    if (!info.bias.empty()) layer_tensors.insert(info.bias);
    plan.layers.push_back(std::move(L));
  }
  for (const auto& [name, t] : g.initializers)
    if (!layer_tensors.count(name)) plan.other_bytes += static_cast<int64_t>(t.numel() * t.element_size());
  plan.act_placement = d.act_placement;
  if (d.act_placement == ActPlacement::kOutputs || d.pin_first_output) pin_pinned_outputs(g, plan);
  unify_shared_inputs(plan);
  update_cost(plan);
  return plan;
}

bool is_embedding_table(const LayerPlan& L) { return L.op == "Gather"; }

std::vector<std::string> pinned_share_warnings(const QuantPlan& plan, double target_bits, double max_share) {
  double total = 0;
  for (const auto& L : plan.layers) total += double(L.params);
  std::vector<std::string> out;
  if (total <= 0) return out;
  for (const auto& L : plan.layers) {
    const double share = double(L.params) / total, extra = L.weight_scheme.bits - target_bits;
    if (!L.pinned || share <= max_share || extra <= 0) continue;
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "layer '%s' (%s) is pinned at %d bits (first/last layer) but holds %.1f%% of the weights: that "
                  "adds %.2f bits to a %.3g-bit average request (%.2f with the other layers at %.3g bits); --pin-bits 0 unpins the first and last "
                  "layer (or set \"pinned\": false and its bits in a --plan file)",
                  L.name.c_str(), L.op.c_str(), L.weight_scheme.bits, 100 * share, share * extra, target_bits,
                  target_bits + share * extra, target_bits);
    out.emplace_back(buf);
  }
  return out;
}

void unify_shared_inputs(QuantPlan& plan) {
  std::map<std::string, int> bits;
  for (const auto& L : plan.layers)
    if (L.quantize_input) bits[L.input] = std::max(bits[L.input], L.input_scheme.bits);
  for (auto& L : plan.layers)
    if (L.quantize_input) L.input_scheme.bits = bits[L.input];
  // SPARQ cuts windows from 8-bit codes, and one quantizer serves every reader of a tensor: a
  // tensor keeps SPARQ only where all its readers ask for the same one.
  std::map<std::string, SparqScheme> sparq;
  for (const auto& L : plan.layers) {
    if (!L.quantize_input) continue;
    auto [it, fresh] = sparq.emplace(L.input, L.input_sparq);
    if (!fresh && it->second != L.input_sparq) it->second = SparqScheme{};
  }
  for (auto& L : plan.layers)
    if (L.quantize_input) L.input_sparq = bits[L.input] == 8 ? sparq[L.input] : SparqScheme{};
}

double layer_size_bits(const LayerPlan& L) {
  const QScheme& s = L.weight_scheme;
  if (L.embed != EmbedScheme::kNone)
    return embed_table_bits(L.embed, s.bits, L.weight_shape.at(0), L.params / std::max<int64_t>(L.weight_shape.at(0), 1)) +
           double(L.bias_params) * 32;
  // Kernel-wise bits: every output channel holds params / C weights, each at its own bits.
  return double(L.params + L.extra_params) * mean_weight_bits(L) +
         double(num_scales(L) + L.extra_points) * (32 + (s.symmetric ? 0 : 8)) + double(L.bias_params) * 32;
}

double layer_bops(const LayerPlan& L) {
  const int abits = !L.quantize_input ? 32 : L.input_sparq.enabled ? 4 : L.input_scheme.bits;
  // A multipoint extra point is one more output channel: its MACs in proportion to its weights.
  const double macs = L.params > 0 ? double(L.macs) * double(L.params + L.extra_params) / double(L.params) : double(L.macs);
  // Kernel-wise bits: each output channel's MACs (the same share for every channel) at its bits.
  return macs * mean_weight_bits(L) * abits;
}

void update_cost(QuantPlan& plan) {
  PlanCost c;
  double bits = 0, wparams = 0, wbits_sum = 0, float_bits = 0;
  for (const auto& L : plan.layers) {
    bits += layer_size_bits(L);
    float_bits += double(L.params + L.bias_params) * 32;
    wparams += double(L.params);
    wbits_sum += double(L.params + L.extra_params) * mean_weight_bits(L);
    c.bops += layer_bops(L);
  }
  bits += double(plan.other_bytes + plan.structure_bytes) * 8;
  float_bits += double(plan.other_bytes + plan.float_structure_bytes) * 8;
  c.size_bytes = static_cast<int64_t>(std::ceil(bits / 8));
  c.float_bytes = static_cast<int64_t>(std::ceil(float_bits / 8));
  c.size_ratio = c.float_bytes > 0 ? double(c.size_bytes) / double(c.float_bytes) : 0;
  c.avg_wbits = wparams > 0 ? wbits_sum / wparams : 0;
  plan.cost = c;
}

nlohmann::json plan_to_json(const QuantPlan& plan) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& L : plan.layers) {
    nlohmann::json j = {{"name", L.name}, {"op", L.op}, {"weight", L.weight},
                        {"weight_shape", L.weight_shape}, {"params", L.params}, {"macs", L.macs},
                        {"pinned", L.pinned}, {"weight_quant", scheme_json(L.weight_scheme, L.weight_range, true)}};
    if (L.embed != EmbedScheme::kNone) j["weight_quant"]["embed_scheme"] = embed_scheme_name(L.embed);
    if (!L.channel_bits.empty()) j["weight_quant"]["channel_bits"] = L.channel_bits;
    if (L.extra_points > 0) {
      j["weight_quant"]["extra_points"] = L.extra_points;
      j["weight_quant"]["extra_params"] = L.extra_params;
    }
    if (L.quantize_input) {
      j["input_quant"] = scheme_json(L.input_scheme, L.input_range, false);
      j["input_quant"]["tensor"] = L.input;
      if (L.input_sparq.enabled) j["input_quant"]["act_scheme"] = act_scheme_name(L.input_sparq);
    } else {
      j["input_quant"] = nullptr;
    }
    layers.push_back(std::move(j));
  }
  const PlanCost& c = plan.cost;
  return {{"mixq_plan_version", QuantPlan::kVersion},
          {"model", plan.model},
          {"search", plan.search},
          {"search_params", plan.search_params},
          {"method", plan.method},
          {"budget", plan.budget},
          {"act_placement", act_placement_name(plan.act_placement)},
          {"cost", {{"size_bytes", c.size_bytes}, {"float_bytes", c.float_bytes}, {"size_ratio", c.size_ratio},
                    {"avg_wbits", c.avg_wbits}, {"bops", c.bops},
                    {"structure_bytes", plan.structure_bytes}}},
          {"layers", layers}};
}

void validate_plan(const QuantPlan& plan, const std::string& where) {
  std::map<std::string, const LayerPlan*> by_input;
  for (const auto& L : plan.layers) {
    const std::string at = where + ": layer '" + L.name + "'";
    const QScheme& w = L.weight_scheme;
    MIXQ_CHECK(valid_bits(w.bits), ErrorKind::kInvalidArgument, at, ": weight bits ", w.bits,
               " is not possible (use 2-8 or 16)");
    MIXQ_CHECK(w.axis >= 0 && w.axis < std::max<int64_t>(1, static_cast<int64_t>(L.weight_shape.size())),
               ErrorKind::kInvalidArgument, at, ": weight axis ", w.axis, " is outside the weight's rank ",
               L.weight_shape.size());
    if (L.embed != EmbedScheme::kNone) {
      MIXQ_CHECK(is_embedding_table(L) && L.weight_shape.size() == 2 && w.axis == 0, ErrorKind::kInvalidArgument, at,
                 ": embed_scheme ", embed_scheme_name(L.embed), " is for embedding tables (a Gather on a constant ",
                 "[rows, dim] table), not a ", L.op, " weight of rank ", L.weight_shape.size(),
                 "; remove it or use embed_scheme none");
      MIXQ_CHECK(w.bits >= 2 && w.bits <= 8, ErrorKind::kInvalidArgument, at, ": embed_scheme ",
                 embed_scheme_name(L.embed), " takes 2..8 bits (got ", w.bits, ")");
    }
    if (!L.channel_bits.empty()) {
      const int64_t C = weight_channels(L);
      MIXQ_CHECK(int64_t(L.channel_bits.size()) == C, ErrorKind::kInvalidArgument, at, ": channel_bits has ",
                 L.channel_bits.size(), " entries but the weight has ", C, " output channels (axis ", w.axis, ")");
      int hi = 0;
      for (size_t c = 0; c < L.channel_bits.size(); ++c) {
        MIXQ_CHECK(L.channel_bits[c] >= 2 && L.channel_bits[c] <= 8, ErrorKind::kInvalidArgument, at,
                   ": channel_bits[", c, "] = ", L.channel_bits[c], " is not possible (use 2-8)");
        hi = std::max(hi, L.channel_bits[c]);
      }
      MIXQ_CHECK(w.bits == hi, ErrorKind::kInvalidArgument, at, ": with channel_bits, bits must be their maximum (",
                 hi, "), got ", w.bits);
      MIXQ_CHECK(w.granularity == Granularity::kPerChannel && L.embed == EmbedScheme::kNone && L.extra_points == 0,
                 ErrorKind::kInvalidArgument, at, ": channel_bits needs a per_channel weight scheme (one scale per ",
                 "output channel) and no embed_scheme or extra points");
    }
    if (w.granularity == Granularity::kPerGroup && L.embed == EmbedScheme::kNone)
      MIXQ_CHECK(w.group_size > 0, ErrorKind::kInvalidArgument, at, ": per_group needs group_size >= 1 (got ",
                 w.group_size, "); a group size at least the reduction length means one group per channel");
    if (!L.quantize_input) continue;
    MIXQ_CHECK(valid_bits(L.input_scheme.bits), ErrorKind::kInvalidArgument, at, ": input bits ",
               L.input_scheme.bits, " is not possible (use 2-8 or 16)");
    MIXQ_CHECK(!L.input_sparq.enabled || L.input_scheme.bits == 8, ErrorKind::kInvalidArgument, at, ": act_scheme ",
               act_scheme_name(L.input_sparq), " cuts 4-bit windows from 8-bit codes, but the input has ",
               L.input_scheme.bits, " bits; use input bits 8 or act_scheme uniform");
    auto it = by_input.find(L.input);
    if (it == by_input.end()) {
      by_input[L.input] = &L;
      continue;
    }
    const LayerPlan& o = *it->second;
    MIXQ_CHECK(o.input_scheme.bits == L.input_scheme.bits && o.input_scheme.symmetric == L.input_scheme.symmetric &&
                   o.input_range == L.input_range && o.input_sparq == L.input_sparq,
               ErrorKind::kInvalidArgument, at, " and layer '", o.name, "' read the same tensor '", L.input,
               "' and must share one activation quantizer, but their input_quant differ");
  }
}

QuantPlan plan_from_json(const nlohmann::json& j, const QuantPlan& tmpl, const std::string& where) {
  auto fail = [&](const std::string& msg) -> void {
    throw Error(ErrorKind::kInvalidArgument, where + ": " + msg);
  };
  QuantPlan plan = tmpl;
  std::string current;  // the layer being read, for messages
  try {
    if (!j.is_object()) fail("a plan is a JSON object");
    if (!j.contains("mixq_plan_version")) fail("missing 'mixq_plan_version' (is this a mixq plan?)");
    int version = json_int<int>(j.at("mixq_plan_version"), "mixq_plan_version");
    if (version != QuantPlan::kVersion)
      fail("plan version " + std::to_string(version) + " is not supported (this mixq reads version " +
           std::to_string(QuantPlan::kVersion) + ")");
    plan.search = j.value("search", std::string("user"));
    plan.search_params = j.value("search_params", nlohmann::json::object());
    plan.method = j.value("method", tmpl.method);
    plan.budget = j.value("budget", nlohmann::json::object());
    plan.act_placement = ActPlacement::kInputs;  // plans written before the option
    if (j.contains("act_placement")) {
      const auto& v = j.at("act_placement");
      if (!v.is_string()) fail("'act_placement' must be \"inputs\" or \"outputs\"");
      try {
        plan.act_placement = parse_act_placement(v.get<std::string>());
      } catch (const Error& e) {
        fail(e.what());
      }
    }
    if (!j.contains("layers") || !j.at("layers").is_array()) fail("missing 'layers' array");
    std::set<std::string> seen;
    for (const auto& jl : j.at("layers")) {
      std::string name = jl.at("name").get<std::string>();
      current = name;
      auto it = std::find_if(plan.layers.begin(), plan.layers.end(), [&](const LayerPlan& L) { return L.name == name; });
      if (it == plan.layers.end())
        fail("layer '" + name + "' is not a quantizable layer of the model (see `mixq info`)");
      if (!seen.insert(name).second) fail("layer '" + name + "' appears twice");
      LayerPlan& L = *it;
      const auto& wq = jl.at("weight_quant");
      L.weight_scheme.bits = json_int<int>(wq.at("bits"), "weight_quant.bits");
      L.weight_scheme.symmetric = wq.value("symmetric", L.weight_scheme.symmetric);
      if (wq.contains("granularity")) L.weight_scheme.granularity = parse_granularity(wq.at("granularity").get<std::string>());
      L.weight_scheme.axis = json_int_or(wq, "axis", L.weight_scheme.axis);
      L.weight_scheme.group_size = json_int_or(wq, "group_size", L.weight_scheme.group_size);
      if (wq.contains("rounding")) L.weight_scheme.rounding = parse_rounding(wq.at("rounding").get<std::string>());
      if (wq.contains("range")) L.weight_range = parse_range_method(wq.at("range").get<std::string>());
      L.embed = parse_embed_scheme(wq.value("embed_scheme", std::string("none")));
      L.channel_bits = wq.contains("channel_bits") ? json_ints(wq.at("channel_bits"), "channel_bits") : std::vector<int>{};
      // What a multipoint run added (cost accounting only: the next run's method decides again).
      L.extra_points = json_int_or(wq, "extra_points", int64_t(0));
      L.extra_params = json_int_or(wq, "extra_params", int64_t(0));
      if (L.extra_points < 0 || L.extra_params < 0) fail("layer '" + name + "': extra_points/extra_params must be >= 0");
      L.pinned = jl.value("pinned", L.pinned);
      if (jl.contains("input_quant") && !jl.at("input_quant").is_null() && L.quantize_input) {
        const auto& aq = jl.at("input_quant");
        L.input_scheme.bits = json_int<int>(aq.at("bits"), "input_quant.bits");
        L.input_scheme.symmetric = aq.value("symmetric", L.input_scheme.symmetric);
        if (aq.contains("range")) L.input_range = parse_range_method(aq.at("range").get<std::string>());
        L.input_sparq = parse_act_scheme(aq.value("act_scheme", std::string("uniform")));
      }
    }
    for (const auto& L : plan.layers)
      if (!seen.count(L.name)) fail("layer '" + L.name + "' is missing from the plan (every quantizable layer needs an entry)");
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::kInvalidArgument, where + ": malformed plan" +
                                                 (current.empty() ? "" : " at layer '" + current + "'") + ": " + e.what());
  } catch (const Error& e) {
    if (std::string(e.what()).rfind(where, 0) == 0) throw;
    throw Error(e.kind(), where + ": layer '" + current + "': " + e.what());
  }
  validate_plan(plan, where);
  update_cost(plan);
  return plan;
}

QuantPlan load_plan(const std::string& path, const QuantPlan& tmpl) {
  std::ifstream f(path);
  MIXQ_CHECK(f.good(), ErrorKind::kIO, "cannot open plan '", path, "'");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kInvalidArgument, path + ": not valid JSON: " + e.what());
  }
  return plan_from_json(j, tmpl, path);
}

void save_plan(const QuantPlan& plan, const std::string& path) {
  write_file_atomic(path, plan_to_json(plan).dump(2) + "\n");
}

}  // namespace mixq
