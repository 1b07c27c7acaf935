// Measuring the sensitivity table (search/sensitivity.h): the reference plan, the probe, every
// (layer, candidate) and (activation tensor, bits) run once, the cache written after each finished
// layer or activation tensor so a killed run resumes. Under `mpirun -np N` (dist/dist.h) every rank
// builds the same probe and takes candidates from a shared counter; rank 0 gathers the entries,
// writes the cache and hands the finished table to every rank.
#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "core/interrupt.h"
#include "core/log.h"
#include "core/progress.h"
#include "dist/dist.h"
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


// One candidate of the table: a weight scheme of layer `idx` (group 0: the plan's granularity) or
// activation bits of tensor `idx`. The unit of work a rank takes.
struct Unit {
  bool act = false;
  size_t idx = 0;  // into the layers to measure, or the activations to measure
  int bits = 0;
  int64_t group = 0;
};

// A measured entry on its way to rank 0: the unit's index, then the entry's doubles (ranks run the
// same binary on one kind of machine, so the bytes are the same struct).
constexpr int kEntryTag = 101;
std::string pack_entry(int64_t u, const SensEntry& e) {
  std::string b(sizeof u + sizeof e, '\0');
  std::memcpy(b.data(), &u, sizeof u);
  std::memcpy(b.data() + sizeof u, &e, sizeof e);
  return b;
}
int64_t unpack_entry(const std::string& b, SensEntry* e) {
  MIXQ_CHECK(b.size() == sizeof(int64_t) + sizeof(SensEntry), ErrorKind::kInternal, "sensitivity entry message of ",
             b.size(), " bytes");
  int64_t u = 0;
  std::memcpy(&u, b.data(), sizeof u);
  std::memcpy(e, b.data() + sizeof u, sizeof *e);
  return u;
}

// The cache file's text as rank 0 reads it, on every rank ("" : none), so all ranks resume from
// the same finished units even while rank 0 rewrites the file.
std::string shared_cache_text(const SensitivityOptions& o) {
  std::string text;
  if (dist::is_root() && o.resume && !o.cache_path.empty() && std::filesystem::exists(o.cache_path)) {
    std::ifstream f(o.cache_path, std::ios::binary);
    std::ostringstream ss;
    ss << f.rdbuf();
    text = ss.str();
  }
  dist::broadcast(text);
  return text;
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
  if (const std::string text = shared_cache_text(opts); !text.empty()) {
    try {
      old = std::make_unique<SensitivityTable>(table_from_text(text, opts.cache_path));
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

  // What is left to measure: layers and activation tensors not in the cache, and their candidates.
  std::vector<const LayerPlan*> layers;
  for (const auto& L : ref.layers)
    if (!L.pinned && !cached.count(L.name)) layers.push_back(&L);
  std::vector<ActSens> acts;
  for (auto& a : act_units(ref, opts))
    if (!cached_acts.count(a.tensor)) acts.push_back(std::move(a));
  if (old && layers.empty() && acts.empty()) {  // nothing to measure: skip building the reference model
    old->model = opts.model_path;
    return *old;
  }
  std::vector<Unit> units;
  std::vector<int64_t> left(layers.size() + acts.size(), 0);  // candidates still unmeasured, per owner
  for (size_t i = 0; i < layers.size(); ++i) {
    for (int b : opts.bits)
      if (b != opts.ref_bits) units.push_back({false, i, b, 0});
    for (int64_t g : opts.group_sizes) {
      // A group reaching the whole reduction length is one group per channel: the plain entries.
      if (g >= q_layout(candidate_scheme(*layers[i], opts.ref_bits, g), layers[i]->weight_shape).k) continue;
      for (int b : opts.bits) units.push_back({false, i, b, g});
    }
  }
  for (size_t i = 0; i < acts.size(); ++i)
    for (int b : opts.act_bits)
      if (b < acts[i].ref_bits) units.push_back({true, i, b, 0});
  for (const Unit& u : units) ++left[u.act ? layers.size() + u.idx : u.idx];

  std::unique_ptr<SensitivityProbe> probe;
  std::vector<Batch> batches;  // the probe's samples, for the curvature pass
  if (!opts.data_free) {
    auto sub = head_dataset(*calib, opts.samples);
    t.samples = sub->size();
    int64_t cut_budget = kProbeCutBudget;
    if (opts.max_memory_mb > 0 && sub->size() > 0) {
      // The probe keeps every sample (and its float outputs) in memory for the whole measurement,
      // so a limit they would pass is refused here, before anything is cached; its cached
      // activations (the cut) get what the samples leave and spill the rest.
      int64_t per_sample = 0;
      for (const auto& x : sub->get(0, 1).inputs) per_sample += static_cast<int64_t>(x.nbytes());
      const int64_t need = per_sample * sub->size();
      MIXQ_CHECK(need <= (opts.max_memory_mb << 20), ErrorKind::kInvalidArgument, "the sensitivity probe keeps its ",
                 sub->size(), " samples in memory (", (need + (1 << 20) - 1) >> 20, " MB of inputs alone), over --max-memory ",
                 opts.max_memory_mb, " MB; lower --sens-samples or raise --max-memory");
      cut_budget = (opts.max_memory_mb << 20) - need;
    }
    probe = std::make_unique<SensitivityProbe>(prepared, ref, *sub, opts.batch_size, cut_budget, opts.spill_dir);
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
  log::verbose("sensitivity: probe ready in " + std::to_string(seconds_since(t0)) + " s (float pass and reference " +
               "quantization on " + std::to_string(t.samples) + " samples" +
               (dist::size() > 1 ? ", on each of " + std::to_string(dist::size()) + " MPI ranks" : std::string()) +
               "); " + std::to_string(units.size()) + " candidates to measure");
  const ProbeMetrics mref = probe ? probe->reference() : ProbeMetrics{};
  const double ref_sqnr = mref.noise > 0 ? -10 * std::log10(mref.noise) : 0;

  Curvature curv;
  if (!batches.empty()) {
    std::vector<std::string> ws;
    for (const LayerPlan* L : layers) ws.push_back(L->weight);
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
  // The layer a rank last worked on: its float weight and the reference scheme's squared error
  // (increases over the reference, so the reference is exactly 0 and values stay additive).
  size_t w_of = SIZE_MAX;
  at::Tensor w, d2ref;
  auto measure = [&](const Unit& u) {
    SensEntry e;
    if (u.act) {
      ProbeChange ch;
      ch.acts[acts[u.idx].tensor] = u.bits;
      data_entry(probe->run_change(ch), e);
      return e;
    }
    const LayerPlan& L = *layers[u.idx];
    if (w_of != u.idx) {
      w_of = u.idx;
      w = prepared.initializers.at(L.weight).to(at::kFloat);
      d2ref = (requantized_weight(w, L, opts.ref_bits) - w).pow(2);
    }
    at::Tensor dq = requantized_weight(w, L, candidate_scheme(L, u.bits, u.group));
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

  // Rank 0: the finished owners (every candidate in), written to the cache as they complete.
  std::map<std::string, LayerSens> done_layers;
  std::map<std::string, ActSens> done_acts;
  std::vector<SensEntry> got(units.size());
  Progress bar("sensitivity", opts.progress && dist::is_root() ? static_cast<int64_t>(units.size()) : 0, "candidates");
  auto table_so_far = [&]() {
    SensitivityTable part = t;
    for (const auto& L : ref.layers) {
      if (L.pinned) continue;
      if (auto it = cached.find(L.name); it != cached.end()) part.layers.push_back(it->second);
      else if (auto jt = done_layers.find(L.name); jt != done_layers.end()) part.layers.push_back(jt->second);
    }
    for (const auto& a : act_units(ref, opts)) {
      if (auto it = cached_acts.find(a.tensor); it != cached_acts.end()) part.acts.push_back(it->second);
      else if (auto jt = done_acts.find(a.tensor); jt != done_acts.end()) part.acts.push_back(jt->second);
    }
    part.seconds = t.seconds + seconds_since(t0);
    return part;
  };
  // Rank 0: an owner (layer, or activation tensor) whose candidates are all in is finished and saved.
  auto finish_owner = [&](size_t owner) {
    const bool is_act = owner >= layers.size();
    const size_t idx = is_act ? owner - layers.size() : owner;
    if (is_act) {
      ActSens a = acts[idx];
      a.bits[a.ref_bits] = SensEntry{};
      a.bits[a.ref_bits].sqnr_db = ref_sqnr;
      for (size_t j = 0; j < units.size(); ++j)
        if (units[j].act && units[j].idx == idx) a.bits[units[j].bits] = got[j];
      done_acts[a.tensor] = std::move(a);
    } else {
      LayerSens ls;
      ls.name = layers[idx]->name;
      ls.params = layers[idx]->params;
      for (int b : opts.bits)
        if (b == opts.ref_bits) ls.bits[b].sqnr_db = ref_sqnr;
      for (size_t j = 0; j < units.size(); ++j)
        if (!units[j].act && units[j].idx == idx)
          (units[j].group ? ls.groups[units[j].group] : ls.bits)[units[j].bits] = got[j];
      done_layers[ls.name] = std::move(ls);
    }
    if (!opts.cache_path.empty()) {
      // The units done so far, so a killed run resumes here.
      save_table(table_so_far(), opts.cache_path);
      set_resume_note("sensitivity table so far in " + opts.cache_path + ": the same command resumes from it");
    }
  };
  auto file_entry = [&](int64_t k, const SensEntry& e) {
    const Unit& u = units[static_cast<size_t>(k)];
    got[static_cast<size_t>(k)] = e;
    bar.advance();
    const size_t owner = u.act ? layers.size() + u.idx : u.idx;
    if (--left[owner] == 0) finish_owner(owner);
  };
  if (dist::is_root())
    for (size_t owner = 0; owner < left.size(); ++owner)
      if (left[owner] == 0) finish_owner(owner);  // only the reference bits asked for: nothing to run
  // Rank 0 files what the other ranks measured, until done() (taking only what has arrived when
  // done() already holds).
  auto receive = [&](const std::function<bool()>& done) {
    dist::receive_until(kEntryTag, done, [&](const std::string& msg) {
      SensEntry e;
      const int64_t k = unpack_entry(msg, &e);
      file_entry(k, e);
    });
  };

  {
    dist::WorkCounter counter;  // each rank measures candidates in plan order, so its probe's cut moves forward
    for (int64_t k = counter.next(); k < static_cast<int64_t>(units.size()); k = counter.next()) {
      const SensEntry e = measure(units[static_cast<size_t>(k)]);
      if (dist::is_root()) {
        file_entry(k, e);
        receive([] { return true; });
      } else {
        dist::send_to_root(kEntryTag, pack_entry(k, e));
      }
      throw_if_interrupted();  // a safe point: every finished layer is in the cache file
    }
    if (dist::is_root())  // what the other ranks still measure
      receive([&] { return done_layers.size() + done_acts.size() == layers.size() + acts.size(); });
  }
  bar.finish();
  std::string text;
  if (dist::is_root()) {
    SensitivityTable full = table_so_far();
    t.layers = std::move(full.layers);
    t.acts = std::move(full.acts);
    t.seconds += seconds_since(t0);
    if (!opts.cache_path.empty()) save_table(t, opts.cache_path);
    if (dist::size() > 1) text = table_to_json(t).dump();
  }
  if (dist::size() > 1) {
    // Every rank continues with the same table (whatever it does next, it does with rank 0's numbers).
    dist::broadcast(text);
    if (!dist::is_root()) t = table_from_text(text, "the table from MPI rank 0");
  }
  if (keep_probe) *keep_probe = std::move(probe);
  return t;
}

}  // namespace mixq
