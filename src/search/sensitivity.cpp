#include "search/sensitivity.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/atomic_file.h"
#include "core/log.h"
#include "core/progress.h"
#include "exec/executor.h"
#include "mixq/error.h"
#include "quant/qdq.h"
#include "quant/quantize.h"
#include "quant/quantizer.h"
#include "search/curvature.h"
#include "search/probe.h"

namespace mixq {

namespace {

class HeadDataset : public Dataset {
 public:
  HeadDataset(const Dataset& base, int64_t n) : base_(base), n_(std::min(n, base.size())) {}
  int64_t size() const override { return n_; }
  bool has_labels() const override { return base_.has_labels(); }
  Batch get(int64_t b, int64_t e) const override { return base_.get(b, e); }
  std::string describe() const override { return "first " + std::to_string(n_) + " of " + base_.describe(); }

 private:
  const Dataset& base_;
  int64_t n_;
};

// The key: everything the numbers depend on. The reference plan JSON covers schemes, ranges,
// pinning and activation bits; search fields are dropped because they do not change the table.
nlohmann::json make_key(const QuantPlan& ref, const SensitivityOptions& o) {
  nlohmann::json pj = plan_to_json(ref);
  pj.erase("search");
  pj.erase("search_params");
  pj.erase("budget");
  pj.erase("model");
  return {{"version", SensitivityTable::kVersion},
          {"model_hash", o.model_path.empty() ? std::string() : file_hash(o.model_path)},
          {"calib", o.data_free ? std::string() : o.calib_spec},
          {"samples", o.data_free ? 0 : o.samples},
          {"bits", o.bits},
          {"ref_bits", o.ref_bits},
          {"data_free", o.data_free},
          {"curvature", o.curvature && !o.data_free},
          {"plan", pj}};
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

std::unique_ptr<Dataset> head_dataset(const Dataset& base, int64_t n) {
  return std::make_unique<HeadDataset>(base, n <= 0 ? base.size() : n);
}

const LayerSens* SensitivityTable::find(const std::string& layer) const {
  for (const auto& l : layers)
    if (l.name == layer) return &l;
  return nullptr;
}

const std::vector<std::string>& signal_names() {
  static const std::vector<std::string> names = {"dl", "kl", "noise", "sqnr", "mse", "dacc", "fisher", "hessian"};
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

void require_signal(const SensitivityTable& t, const std::string& s, const std::string& where) {
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
    nlohmann::json b = nlohmann::json::object();
    for (const auto& [bits, e] : l.bits)
      b[std::to_string(bits)] = {{"mse", e.mse}, {"noise", e.noise}, {"sqnr_db", e.sqnr_db},
                                 {"kl", e.kl},   {"dl", e.dl},       {"dacc", e.dacc},
                                 {"fisher", e.fisher}, {"hessian", e.hessian}};
    layers.push_back({{"name", l.name}, {"params", l.params}, {"bits", b}});
  }
  return {{"mixq_sensitivity_version", SensitivityTable::kVersion},
          {"model", t.model},
          {"key", t.key},
          {"ref_bits", t.ref_bits},
          {"samples", t.samples},
          {"float", {{"top1", t.float_top1}, {"loss", t.float_loss}}},
          {"reference", {{"top1", t.ref_top1}, {"loss", t.ref_loss}, {"kl", t.ref_kl}, {"noise", t.ref_noise}}},
          {"seconds", t.seconds},
          {"has_fisher", t.has_fisher},
          {"has_hessian", t.has_hessian},
          {"layers", layers},
          {"plan", t.plan}};
}

SensitivityTable table_from_json(const nlohmann::json& j, const std::string& where) {
  SensitivityTable t;
  std::string current;
  try {
    MIXQ_CHECK(j.is_object() && j.contains("mixq_sensitivity_version"), ErrorKind::kInvalidArgument, where,
               ": not a mixq sensitivity table (no 'mixq_sensitivity_version'); make one with `mixq pareto`");
    int v = j.at("mixq_sensitivity_version").get<int>();
    MIXQ_CHECK(v == SensitivityTable::kVersion, ErrorKind::kInvalidArgument, where, ": table version ", v,
               " is not supported (this mixq reads ", SensitivityTable::kVersion, "); recompute it");
    t.model = j.value("model", std::string());
    t.key = j.at("key");
    t.ref_bits = j.at("ref_bits").get<int>();
    t.samples = j.value("samples", int64_t(0));
    t.float_top1 = j.at("float").at("top1").get<double>();
    t.float_loss = j.at("float").at("loss").get<double>();
    const auto& r = j.at("reference");
    t.ref_top1 = r.at("top1").get<double>();
    t.ref_loss = r.at("loss").get<double>();
    t.ref_kl = r.at("kl").get<double>();
    t.ref_noise = r.at("noise").get<double>();
    t.seconds = j.value("seconds", 0.0);
    t.has_fisher = j.value("has_fisher", false);
    t.has_hessian = j.value("has_hessian", false);
    t.plan = j.at("plan");
    for (const auto& jl : j.at("layers")) {
      LayerSens l;
      l.name = current = jl.at("name").get<std::string>();
      l.params = jl.at("params").get<int64_t>();
      for (const auto& [k, e] : jl.at("bits").items()) {
        int b = std::stoi(k);
        MIXQ_CHECK(b >= 2 && b <= 8, ErrorKind::kInvalidArgument, where, ": layer '", l.name, "': bits '", k,
                   "' outside 2-8");
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
          MIXQ_CHECK(std::isfinite(x), ErrorKind::kInvalidArgument, where, ": layer '", l.name, "' bits ", b,
                     ": a signal is not finite");
        l.bits[b] = s;
      }
      t.layers.push_back(std::move(l));
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::kInvalidArgument, where + ": malformed sensitivity table" +
                                                 (current.empty() ? "" : " at layer '" + current + "'") + ": " + e.what() +
                                                 "; recompute it with `mixq pareto`");
  } catch (const std::invalid_argument&) {
    throw Error(ErrorKind::kInvalidArgument, where + ": layer '" + current + "': a bits key is not a number");
  }
  return t;
}

SensitivityTable load_table(const std::string& path) {
  std::ifstream f(path);
  MIXQ_CHECK(f.good(), ErrorKind::kIO, "cannot open sensitivity table '", path, "'");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kInvalidArgument, path + ": not valid JSON: " + e.what());
  }
  return table_from_json(j, path);
}

void save_table(const SensitivityTable& t, const std::string& path) {
  write_file_atomic(path, table_to_json(t).dump(1) + "\n");
}

SensitivityTable measure_sensitivity(const Graph& prepared, const QuantPlan& plan, const Dataset* calib,
                                     const SensitivityOptions& opts) {
  auto t0 = std::chrono::steady_clock::now();
  MIXQ_CHECK(opts.data_free || calib, ErrorKind::kInvalidArgument,
             "the sensitivity table needs calibration data (--calib) unless only the mse signal is used");
  for (int b : opts.bits)
    MIXQ_CHECK(b >= 2 && b <= 8, ErrorKind::kInvalidArgument, "candidate bits ", b, " outside 2-8");
  QuantPlan ref = plan;
  for (auto& L : ref.layers)
    if (!L.pinned) L.weight_scheme.bits = opts.ref_bits;
  update_cost(ref);

  SensitivityTable t;
  t.key = make_key(ref, opts);
  t.ref_bits = opts.ref_bits;
  t.model = opts.model_path;
  t.plan = plan_to_json(ref);
  std::map<std::string, LayerSens> cached;
  if (!opts.cache_path.empty() && std::filesystem::exists(opts.cache_path)) {
    try {
      SensitivityTable old = load_table(opts.cache_path);
      if (old.key == t.key) {
        for (auto& l : old.layers) cached[l.name] = l;
        t.seconds = old.seconds;
        log::verbose("sensitivity: resuming from " + opts.cache_path + " (" + std::to_string(cached.size()) +
                     " layers done)");
      } else {
        log::warn("sensitivity cache " + opts.cache_path + " was made for another model or settings; recomputing it");
      }
    } catch (const Error& e) {
      log::warn(std::string("ignoring unreadable sensitivity cache: ") + e.what());
    }
  }

  bool all_cached = !cached.empty();
  for (const auto& L : ref.layers)
    if (!L.pinned && !cached.count(L.name)) all_cached = false;
  if (all_cached) {  // nothing to measure: skip building the reference model and its logits
    SensitivityTable old = load_table(opts.cache_path);
    old.model = opts.model_path;
    return old;
  }

  std::unique_ptr<SensitivityProbe> probe;
  std::vector<Batch> batches;  // the probe's samples, for the curvature pass
  if (!opts.data_free) {
    auto sub = head_dataset(*calib, opts.samples);
    t.samples = sub->size();
    probe = std::make_unique<SensitivityProbe>(prepared, ref, *sub, opts.batch_size);
    t.float_top1 = probe->float_metrics().top1;
    t.float_loss = probe->float_metrics().loss;
    t.ref_top1 = probe->reference().top1;
    t.ref_loss = probe->reference().loss;
    t.ref_kl = probe->reference().kl;
    t.ref_noise = probe->reference().noise;
    if (opts.curvature && probe->has_labels())
      for (int64_t b = 0; b < sub->size(); b += opts.batch_size)
        batches.push_back(sub->get(b, std::min(sub->size(), b + opts.batch_size)));
  }
  const ProbeMetrics mref = probe ? probe->reference() : ProbeMetrics{};

  Curvature curv;
  if (!batches.empty()) {
    std::vector<std::string> ws;
    for (const auto& L : ref.layers)
      if (!L.pinned && !cached.count(L.name)) ws.push_back(L.weight);
    if (!ws.empty()) curv = measure_curvature(prepared, ws, batches);
    t.has_fisher = true;
    t.has_hessian = curv.has_trace;
  }
  if (!cached.empty() && opts.curvature) {
    // Resumed: the cached layers were measured with the same key, so the flags carry over.
    SensitivityTable old = load_table(opts.cache_path);
    t.has_fisher = old.has_fisher || t.has_fisher;
    t.has_hessian = old.has_hessian && (curv.has_trace || curv.fisher.empty());
  }

  int64_t todo = 0;
  for (const auto& L : ref.layers)
    if (!L.pinned && !cached.count(L.name)) ++todo;
  Progress bar("sensitivity", opts.progress ? todo : 0, "layers");
  for (const auto& L : ref.layers) {
    if (L.pinned) continue;
    if (cached.count(L.name)) {
      t.layers.push_back(cached[L.name]);
      continue;
    }
    LayerSens ls;
    ls.name = L.name;
    ls.params = L.params;
    const at::Tensor& w0 = prepared.initializers.at(L.weight);
    at::Tensor w = w0.to(at::kFloat);
    for (int b : opts.bits) {
      SensEntry e;
      if (b == opts.ref_bits) {
        e.sqnr_db = mref.noise > 0 ? -10 * std::log10(mref.noise) : 0;
        ls.bits[b] = e;
        continue;
      }
      at::Tensor dq = requantized_weight(w, L, b);
      // Increase over the reference bits, so ref_bits is exactly 0 and values stay additive.
      at::Tensor dref = requantized_weight(w, L, opts.ref_bits);
      at::Tensor d2 = (dq - w).pow(2), d2ref = (dref - w).pow(2);
      e.mse = d2.sum().item<double>() - d2ref.sum().item<double>();
      if (auto it = curv.fisher.find(L.weight); it != curv.fisher.end())
        e.fisher = 0.5 * (it->second.reshape(w.sizes()) * (d2 - d2ref)).sum().item<double>();
      if (auto it = curv.trace.find(L.weight); it != curv.trace.end())
        e.hessian = 0.5 * it->second / double(w.numel()) * e.mse;
      if (opts.data_free) {
        e.dl = e.kl = e.noise = e.mse;
      } else {
        ProbeMetrics m = probe->run({{L.name, dq}});
        e.noise = m.noise - mref.noise;
        e.sqnr_db = m.noise > 0 ? -10 * std::log10(m.noise) : 0;
        e.kl = m.kl - mref.kl;
        e.dl = probe->has_labels() ? m.loss - mref.loss : e.kl;
        e.dacc = mref.top1 - m.top1;
      }
      ls.bits[b] = e;
    }
    t.layers.push_back(std::move(ls));
    bar.advance();
    if (!opts.cache_path.empty()) {
      // Partial table: the layers done so far (in plan order), so a killed run resumes here.
      SensitivityTable part = t;
      for (const auto& L2 : ref.layers)
        if (!L2.pinned && cached.count(L2.name) && !part.find(L2.name)) part.layers.push_back(cached[L2.name]);
      part.seconds = t.seconds + seconds_since(t0);
      save_table(part, opts.cache_path);
    }
  }
  bar.finish();
  t.seconds += seconds_since(t0);
  if (!opts.cache_path.empty()) save_table(t, opts.cache_path);
  return t;
}

}  // namespace mixq
