#include "search/sensitivity.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "core/json_int.h"
#include "core/atomic_file.h"
#include "mixq/error.h"

namespace mixq {

namespace {

nlohmann::json entry_to_json(const SensEntry& e) {
  return {{"mse", e.mse}, {"noise", e.noise}, {"sqnr_db", e.sqnr_db}, {"kl", e.kl},
          {"dl", e.dl},   {"dacc", e.dacc},   {"fisher", e.fisher},   {"hessian", e.hessian}};
}

nlohmann::json entries_to_json(const std::map<int, SensEntry>& m) {
  nlohmann::json b = nlohmann::json::object();
  for (const auto& [bits, e] : m) b[std::to_string(bits)] = entry_to_json(e);
  return b;
}

// `what` names the owner in messages ("layer 'x'", "activation 'y'").
std::map<int, SensEntry> entries_from_json(const nlohmann::json& j, const std::string& where, const std::string& what) {
  std::map<int, SensEntry> out;
  for (const auto& [k, e] : j.items()) {
    int b = 0;
    try {
      b = std::stoi(k);
    } catch (const std::exception&) {
      throw Error(ErrorKind::kInvalidArgument, where + ": " + what + ": bits key '" + k + "' is not a number");
    }
    MIXQ_CHECK(b >= 2 && b <= 8, ErrorKind::kInvalidArgument, where, ": ", what, ": bits '", k, "' outside 2-8");
    SensEntry s;
    s.mse = e.at("mse").get<double>();
    s.noise = e.at("noise").get<double>();
    s.sqnr_db = e.at("sqnr_db").get<double>();
    s.kl = e.at("kl").get<double>();
    s.dl = e.at("dl").get<double>();
    s.dacc = e.at("dacc").get<double>();
    s.fisher = e.value("fisher", 0.0);
    s.hessian = e.value("hessian", 0.0);
    for (double x : {s.mse, s.noise, s.kl, s.dl, s.dacc})
      MIXQ_CHECK(std::isfinite(x), ErrorKind::kInvalidArgument, where, ": ", what, " bits ", b,
                 ": a signal is not finite");
    out[b] = s;
  }
  return out;
}

}  // namespace

// Reduction length K of a weight (elements per output channel): group sizes >= K are per-channel.
QScheme candidate_scheme(const LayerPlan& L, int bits, int64_t group) {
  QScheme s = L.weight_scheme;
  s.bits = bits;
  if (group > 0) {
    s.granularity = Granularity::kPerGroup;
    s.group_size = group;
  }
  return s;
}

const LayerSens* SensitivityTable::find(const std::string& layer) const {
  for (const auto& l : layers)
    if (l.name == layer) return &l;
  return nullptr;
}

const ActSens* SensitivityTable::find_act(const std::string& tensor) const {
  for (const auto& a : acts)
    if (a.tensor == tensor) return &a;
  return nullptr;
}

SensitivityTable with_candidates(const SensitivityTable& t, const std::vector<int>& act_bits,
                                 const std::vector<int64_t>& group_sizes) {
  SensitivityTable out = t;
  for (auto& l : out.layers)
    for (auto it = l.groups.begin(); it != l.groups.end();)
      it = std::find(group_sizes.begin(), group_sizes.end(), it->first) == group_sizes.end() ? l.groups.erase(it)
                                                                                          : std::next(it);
  for (auto& a : out.acts)
    for (auto it = a.bits.begin(); it != a.bits.end();)
      it = it->first != a.ref_bits && std::find(act_bits.begin(), act_bits.end(), it->first) == act_bits.end()
               ? a.bits.erase(it)
               : std::next(it);
  return out;
}

bool is_data_signal(const std::string& s) { return s == "kl" || s == "dl" || s == "noise" || s == "sqnr" || s == "dacc"; }

double predicted_signal(const SensitivityTable& t, const QuantPlan& plan, const std::string& signal) {
  double pred = 0;
  std::set<std::string> seen;
  for (const auto& L : plan.layers) {
    if (const LayerSens* ls = t.find(L.name)) {
      // A group candidate lives in `groups`; a plan whose base granularity is
      // already per-group was measured at that granularity, so `bits` holds it.
      const std::map<int, SensEntry>* m = &ls->bits;
      if (L.weight_scheme.granularity == Granularity::kPerGroup)
        if (auto g = ls->groups.find(L.weight_scheme.group_size); g != ls->groups.end()) m = &g->second;
      if (auto it = m->find(L.weight_scheme.bits); it != m->end()) pred += signal_value(it->second, signal);
    }
    if (L.quantize_input && seen.insert(L.input).second)
      if (const ActSens* a = t.find_act(L.input))
        if (auto it = a->bits.find(L.input_scheme.bits); it != a->bits.end()) pred += signal_value(it->second, signal);
  }
  return pred;
}

const std::vector<std::string>& signal_names() {
  static const std::vector<std::string> names = {"auto", "dl", "kl", "noise", "sqnr", "mse", "dacc", "fisher", "hessian"};
  return names;
}

double signal_value(const SensEntry& e, const std::string& s) {
  if (s == "dl") return e.dl;
  if (s == "kl") return e.kl;
  if (s == "noise" || s == "sqnr") return e.noise;
  if (s == "mse") return e.mse;
  if (s == "dacc") return e.dacc;
  if (s == "fisher") return e.fisher;
  if (s == "hessian") return e.hessian;
  throw Error(ErrorKind::kInvalidArgument,
              "unknown sensitivity signal '" + s + "' (use dl, kl, noise, sqnr, mse, dacc, fisher or hessian)");
}

std::string resolve_signal(const std::string& signal, const SensitivityTable* t) {
  if (signal != "auto") return signal;
  return t && t->has_labels ? "kl" : "noise";
}

void require_signal(const SensitivityTable& t, const std::string& s0, const std::string& where) {
  const std::string s = resolve_signal(s0, &t);
  signal_value(SensEntry{}, s);
  MIXQ_CHECK(s != "fisher" || t.has_fisher, ErrorKind::kInvalidArgument, where,
             ": the sensitivity table has no fisher signal (made without labelled calibration data or before it "
             "existed); recompute it");
  MIXQ_CHECK(s != "hessian" || t.has_hessian, ErrorKind::kInvalidArgument, where,
             ": the sensitivity table has no hessian signal (an op lacked double backward, or the table predates "
             "it); use another --signal or recompute it");
}

std::string file_hash(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  MIXQ_CHECK(f.good(), ErrorKind::kIO, "cannot read '", path, "' to hash it");
  uint64_t h = 1469598103934665603ull;
  char buf[1 << 16];
  while (f) {
    f.read(buf, sizeof buf);
    for (std::streamsize i = 0; i < f.gcount(); ++i) {
      h ^= static_cast<unsigned char>(buf[i]);
      h *= 1099511628211ull;
    }
  }
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
  return out;
}

nlohmann::json table_to_json(const SensitivityTable& t) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : t.layers) {
    nlohmann::json jl = {{"name", l.name}, {"params", l.params}, {"bits", entries_to_json(l.bits)}};
    if (!l.groups.empty()) {
      nlohmann::json g = nlohmann::json::object();
      for (const auto& [size, m] : l.groups) g[std::to_string(size)] = entries_to_json(m);
      jl["groups"] = g;
    }
    layers.push_back(jl);
  }
  nlohmann::json acts = nlohmann::json::array();
  for (const auto& a : t.acts)
    acts.push_back({{"tensor", a.tensor}, {"layers", a.layers}, {"ref_bits", a.ref_bits}, {"bits", entries_to_json(a.bits)}});
  return {{"mixq_sensitivity_version", SensitivityTable::kVersion},
          {"model", t.model},
          {"key", t.key},
          {"ref_bits", t.ref_bits},
          {"samples", t.samples},
          {"float", {{"top1", t.float_top1}, {"loss", t.float_loss}}},
          {"reference", {{"top1", t.ref_top1}, {"loss", t.ref_loss}, {"kl", t.ref_kl}, {"noise", t.ref_noise}}},
          {"seconds", t.seconds},
          {"has_labels", t.has_labels},
          {"has_fisher", t.has_fisher},
          {"has_hessian", t.has_hessian},
          {"layers", layers},
          {"activations", acts},
          {"plan", t.plan}};
}

SensitivityTable table_from_json(const nlohmann::json& j, const std::string& where) {
  SensitivityTable t;
  std::string current;
  try {
    MIXQ_CHECK(j.is_object() && j.contains("mixq_sensitivity_version"), ErrorKind::kInvalidArgument, where,
               ": not a mixq sensitivity table (no 'mixq_sensitivity_version'); make one with `mixq pareto`");
    int v = json_int<int>(j.at("mixq_sensitivity_version"), "mixq_sensitivity_version");
    MIXQ_CHECK(v == 1 || v == SensitivityTable::kVersion, ErrorKind::kInvalidArgument, where, ": table version ", v,
               " is not supported (this mixq reads ", SensitivityTable::kVersion, "); recompute it");
    t.model = j.value("model", std::string());
    t.key = j.at("key");
    t.ref_bits = json_int<int>(j.at("ref_bits"), "ref_bits");
    t.samples = json_int_or(j, "samples", int64_t(0));
    t.float_top1 = j.at("float").at("top1").get<double>();
    t.float_loss = j.at("float").at("loss").get<double>();
    const auto& r = j.at("reference");
    t.ref_top1 = r.at("top1").get<double>();
    t.ref_loss = r.at("loss").get<double>();
    t.ref_kl = r.at("kl").get<double>();
    t.ref_noise = r.at("noise").get<double>();
    t.seconds = j.value("seconds", 0.0);
    t.has_labels = j.value("has_labels", t.float_loss > 0);  // older tables: only labels gave a loss
    t.has_fisher = j.value("has_fisher", false);
    t.has_hessian = j.value("has_hessian", false);
    t.plan = j.at("plan");
    for (const auto& jl : j.at("layers")) {
      LayerSens l;
      l.name = current = jl.at("name").get<std::string>();
      l.params = json_int<int64_t>(jl.at("params"), "params");
      const std::string what = "layer '" + l.name + "'";
      l.bits = entries_from_json(jl.at("bits"), where, what);
      if (jl.contains("groups"))
        for (const auto& [k, m] : jl.at("groups").items()) {
          int64_t g = 0;
          try {
            g = std::stoll(k);
          } catch (const std::exception&) {
          }
          MIXQ_CHECK(g >= 1, ErrorKind::kInvalidArgument, where, ": ", what, ": group size '", k, "' is not >= 1");
          l.groups[g] = entries_from_json(m, where, what + " group " + k);
        }
      t.layers.push_back(std::move(l));
    }
    current.clear();
    if (j.contains("activations"))
      for (const auto& ja : j.at("activations")) {
        ActSens a;
        a.tensor = current = ja.at("tensor").get<std::string>();
        a.layers = ja.at("layers").get<std::vector<std::string>>();
        a.ref_bits = json_int<int>(ja.at("ref_bits"), "ref_bits");
        a.bits = entries_from_json(ja.at("bits"), where, "activation '" + a.tensor + "'");
        t.acts.push_back(std::move(a));
      }
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::kInvalidArgument, where + ": malformed sensitivity table" +
                                                 (current.empty() ? "" : " at layer '" + current + "'") + ": " + e.what() +
                                                 "; recompute it with `mixq pareto`");
  }
  return t;
}

SensitivityTable table_from_text(const std::string& text, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kInvalidArgument, where + ": not valid JSON: " + e.what());
  }
  return table_from_json(j, where);
}

SensitivityTable load_table(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  MIXQ_CHECK(f.good(), ErrorKind::kIO, "cannot open sensitivity table '", path, "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  return table_from_text(ss.str(), path);
}

void save_table(const SensitivityTable& t, const std::string& path) {
  write_file_atomic(path, table_to_json(t).dump(1) + "\n");
}

}  // namespace mixq
