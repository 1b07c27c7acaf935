// Measuring the sensitivity table (search/sensitivity.h): the reference plan, the probe, every
// (layer, candidate) and (activation tensor, bits) run once, the cache written after each unit so
// a killed run resumes.
#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>

#include "core/interrupt.h"
#include "core/log.h"
#include "core/progress.h"
#include "mixq/error.h"
#include "search/curvature.h"
#include "search/probe.h"
#include "search/sensitivity.h"

namespace mixq {

namespace {

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
          {"act_bits", o.data_free ? std::vector<int>{} : o.act_bits},
          {"group_sizes", o.group_sizes},
          {"data_free", o.data_free},
          {"curvature", o.curvature && !o.data_free},
          {"plan", pj}};
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Activation tensors with candidates: read only by unpinned layers (a pinned reader keeps its
// input at the pinned bits), each with the bit-widths of `act_bits` below the plan's bits.
std::vector<ActSens> act_units(const QuantPlan& ref, const SensitivityOptions& o) {
  std::vector<ActSens> out;
  if (o.data_free) return out;
  std::map<std::string, size_t> at;
  std::set<std::string> blocked;
  for (const auto& L : ref.layers) {
    if (!L.quantize_input) continue;
    if (L.pinned) blocked.insert(L.input);
    auto [it, fresh] = at.emplace(L.input, out.size());
    if (fresh) {
      ActSens a;
      a.tensor = L.input;
      a.ref_bits = L.input_scheme.bits;
      out.push_back(a);
    }
    out[it->second].layers.push_back(L.name);
  }
  std::vector<ActSens> keep;
  for (auto& a : out) {
    if (blocked.count(a.tensor)) continue;
    bool any = false;
    for (int b : o.act_bits) any = any || b < a.ref_bits;
    if (any) keep.push_back(std::move(a));
  }
  return keep;
}

}  // namespace

SensitivityTable measure_sensitivity(const Graph& prepared, const QuantPlan& plan, const Dataset* calib,
                                     const SensitivityOptions& opts, std::unique_ptr<SensitivityProbe>* keep_probe) {
  auto t0 = std::chrono::steady_clock::now();
  MIXQ_CHECK(opts.data_free || calib, ErrorKind::kInvalidArgument,
             "the sensitivity table needs calibration data (--calib) unless only the mse signal is used");
  for (int b : opts.bits)
    MIXQ_CHECK(b >= 2 && b <= 8, ErrorKind::kInvalidArgument, "candidate bits ", b, " outside 2-8");
  for (int b : opts.act_bits)
    MIXQ_CHECK(b >= 2 && b <= 8, ErrorKind::kInvalidArgument, "activation candidate bits ", b, " outside 2-8");
  for (int64_t g : opts.group_sizes)
    MIXQ_CHECK(g >= 1, ErrorKind::kInvalidArgument, "candidate group size ", g, " must be >= 1");
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
  std::map<std::string, ActSens> cached_acts;
  std::unique_ptr<SensitivityTable> old;
  if (opts.resume && !opts.cache_path.empty() && std::filesystem::exists(opts.cache_path)) {
    try {
      old = std::make_unique<SensitivityTable>(load_table(opts.cache_path));
      if (old->key == t.key) {
        for (auto& l : old->layers) cached[l.name] = l;
        for (auto& a : old->acts) cached_acts[a.tensor] = a;
        t.seconds = old->seconds;
        log::verbose("sensitivity: resuming from " + opts.cache_path + " (" + std::to_string(cached.size()) +
                     " layers, " + std::to_string(cached_acts.size()) + " activations done)");
      } else {
        log::warn("sensitivity cache " + opts.cache_path + " was made for another model or settings; recomputing it");
        old.reset();
      }
    } catch (const Error& e) {
      log::warn(std::string("ignoring unreadable sensitivity cache: ") + e.what());
    }
  }

  const std::vector<ActSens> acts = act_units(ref, opts);
  int64_t todo = 0;
  for (const auto& L : ref.layers)
    if (!L.pinned && !cached.count(L.name)) ++todo;
  for (const auto& a : acts)
    if (!cached_acts.count(a.tensor)) ++todo;
  if (old && todo == 0) {  // nothing to measure: skip building the reference model and its logits
    old->model = opts.model_path;
    return *old;
  }

  std::unique_ptr<SensitivityProbe> probe;
  std::vector<Batch> batches;  // the probe's samples, for the curvature pass
  if (!opts.data_free) {
    auto sub = head_dataset(*calib, opts.samples);
    t.samples = sub->size();
    if (opts.max_memory_mb > 0 && sub->size() > 0) {
      // The probe keeps every sample (and its float outputs) in memory for the whole measurement;
      // it cannot spill, so a limit it would pass is refused here, before anything is cached.
      int64_t per_sample = 0;
      for (const auto& x : sub->get(0, 1).inputs) per_sample += static_cast<int64_t>(x.nbytes());
      const int64_t need = per_sample * sub->size();
      MIXQ_CHECK(need <= (opts.max_memory_mb << 20), ErrorKind::kInvalidArgument, "the sensitivity probe keeps its ",
                 sub->size(), " samples in memory (", (need + (1 << 20) - 1) >> 20, " MB of inputs alone), over --max-memory ",
                 opts.max_memory_mb, " MB; lower --sens-samples or raise --max-memory");
    }
    probe = std::make_unique<SensitivityProbe>(prepared, ref, *sub, opts.batch_size);
    t.float_top1 = probe->float_metrics().top1;
    t.float_loss = probe->float_metrics().loss;
    t.ref_top1 = probe->reference().top1;
    t.ref_loss = probe->reference().loss;
    t.ref_kl = probe->reference().kl;
    t.ref_noise = probe->reference().noise;
    t.has_labels = probe->has_labels();
    if (opts.curvature && probe->has_labels())
      for (int64_t b = 0, bs = opts.batch_size > 0 ? opts.batch_size : kProbeMaxBatch; b < sub->size(); b += bs)
        batches.push_back(sub->get(b, std::min(sub->size(), b + bs)));
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
  if (old && opts.curvature) {
    // Resumed: the cached layers were measured with the same key, so the flags carry over.
    t.has_fisher = old->has_fisher || t.has_fisher;
    t.has_hessian = old->has_hessian && (curv.has_trace || curv.fisher.empty());
  }

  // The data signals of probe metrics as increases over the reference.
  auto data_entry = [&](const ProbeMetrics& m, SensEntry& e) {
    e.noise = m.noise - mref.noise;
    e.sqnr_db = m.noise > 0 ? -10 * std::log10(m.noise) : 0;
    e.kl = m.kl - mref.kl;
    e.dl = probe->has_labels() ? m.loss - mref.loss : e.kl;
    e.dacc = mref.top1 - m.top1;
  };
  auto save_partial = [&]() {
    if (opts.cache_path.empty()) return;
    // The units done so far, so a killed run resumes here.
    SensitivityTable part = t;
    for (const auto& L2 : ref.layers)
      if (!L2.pinned && cached.count(L2.name) && !part.find(L2.name)) part.layers.push_back(cached[L2.name]);
    for (const auto& a : acts)
      if (cached_acts.count(a.tensor) && !part.find_act(a.tensor)) part.acts.push_back(cached_acts[a.tensor]);
    part.seconds = t.seconds + seconds_since(t0);
    save_table(part, opts.cache_path);
    set_resume_note("sensitivity table so far in " + opts.cache_path + ": the same command resumes from it");
  };

  Progress bar("sensitivity", opts.progress ? todo : 0, "units");
  for (const auto& L : ref.layers) {
    if (L.pinned) continue;
    if (cached.count(L.name)) {
      t.layers.push_back(cached[L.name]);
      continue;
    }
    LayerSens ls;
    ls.name = L.name;
    ls.params = L.params;
    at::Tensor w = prepared.initializers.at(L.weight).to(at::kFloat);
    // Increases over the reference scheme, so the reference is exactly 0 and values stay additive.
    at::Tensor d2ref = (requantized_weight(w, L, opts.ref_bits) - w).pow(2);
    auto entry = [&](const QScheme& s) {
      SensEntry e;
      at::Tensor dq = requantized_weight(w, L, s);
      at::Tensor d2 = (dq - w).pow(2);
      e.mse = d2.sum().item<double>() - d2ref.sum().item<double>();
      if (auto it = curv.fisher.find(L.weight); it != curv.fisher.end())
        e.fisher = 0.5 * (it->second.reshape(w.sizes()) * (d2 - d2ref)).sum().item<double>();
      if (auto it = curv.trace.find(L.weight); it != curv.trace.end())
        e.hessian = 0.5 * it->second / double(w.numel()) * e.mse;
      if (opts.data_free)
        e.dl = e.kl = e.noise = e.mse;
      else
        data_entry(probe->run({{L.name, dq}}), e);
      return e;
    };
    for (int b : opts.bits) {
      if (b == opts.ref_bits) {
        SensEntry e;
        e.sqnr_db = mref.noise > 0 ? -10 * std::log10(mref.noise) : 0;
        ls.bits[b] = e;
        continue;
      }
      ls.bits[b] = entry(candidate_scheme(L, b, 0));
    }
    for (int64_t g : opts.group_sizes) {
      // A group reaching the whole reduction length is one group per channel: the plain entries.
      if (g >= q_layout(candidate_scheme(L, opts.ref_bits, g), L.weight_shape).k) continue;
      for (int b : opts.bits) ls.groups[g][b] = entry(candidate_scheme(L, b, g));
    }
    t.layers.push_back(std::move(ls));
    bar.advance();
    save_partial();
    throw_if_interrupted();  // a safe point: every finished unit is in the cache file
  }
  for (const auto& a0 : acts) {
    if (cached_acts.count(a0.tensor)) {
      t.acts.push_back(cached_acts[a0.tensor]);
      continue;
    }
    ActSens a = a0;
    a.bits[a.ref_bits] = SensEntry{};
    a.bits[a.ref_bits].sqnr_db = mref.noise > 0 ? -10 * std::log10(mref.noise) : 0;
    for (int b : opts.act_bits) {
      if (b >= a.ref_bits) continue;
      ProbeChange ch;
      ch.acts[a.tensor] = b;
      data_entry(probe->run_change(ch), a.bits[b]);
    }
    t.acts.push_back(std::move(a));
    bar.advance();
    save_partial();
    throw_if_interrupted();  // a safe point: every finished unit is in the cache file
  }
  bar.finish();
  t.seconds += seconds_since(t0);
  if (!opts.cache_path.empty()) save_table(t, opts.cache_path);
  if (keep_probe) *keep_probe = std::move(probe);
  return t;
}

}  // namespace mixq
