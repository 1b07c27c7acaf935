#include "search/additivity.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <tuple>

#include "core/log.h"
#include "graph/blocks.h"
#include "graph/layers.h"
#include "search/context.h"
#include "mixq/error.h"
#include "search/probe.h"

namespace mixq {

namespace {

// The measured value of `signal` for probe metrics m, as an increase over the reference (the
// table's convention). nullopt for signals the probe does not measure.
std::optional<double> measured_signal(const std::string& signal, const ProbeMetrics& m, const ProbeMetrics& ref,
                                      bool labels) {
  if (signal == "kl") return m.kl - ref.kl;
  if (signal == "noise" || signal == "sqnr") return m.noise - ref.noise;
  if (signal == "dl") return labels ? m.loss - ref.loss : m.kl - ref.kl;
  if (signal == "dacc") return ref.top1 - m.top1;
  return std::nullopt;
}

// The option index of every unit for the plan's current schemes.
Choice choice_of(const Problem& p, const QuantPlan& plan) {
  Choice c(p.units.size(), 0);
  for (size_t u = 0; u < p.units.size(); ++u) {
    const ChoiceUnit& U = p.units[u];
    const LayerPlan& L = plan.layers[U.layers.front()];
    const int b = U.is_act() ? L.input_scheme.bits : L.weight_scheme.bits;
    const int64_t g = !U.is_act() && L.weight_scheme.granularity == Granularity::kPerGroup &&
                              p.base_weight[U.layers.front()].granularity != Granularity::kPerGroup
                          ? L.weight_scheme.group_size
                          : 0;
    for (size_t o = 0; o < U.bits.size(); ++o)
      if (U.bits[o] == b && U.group[o] == g) c[u] = static_cast<int>(o);
  }
  return c;
}

// The probe change for units `which` at their options in `c` (all units when empty).
ProbeChange change_of(const Problem& p, const Choice& c, const QuantPlan& base, const std::vector<int>& which) {
  QuantPlan trial = base;
  apply_choice(p, c, trial);
  ProbeChange ch;
  auto add = [&](size_t u) {
    const ChoiceUnit& U = p.units[u];
    for (int i : U.layers) {
      const LayerPlan& L = trial.layers[i];
      if (L.pinned) continue;
      if (U.is_act())
        ch.acts[U.act] = L.input_scheme.bits;
      else
        ch.weights[L.name] = L.weight_scheme;
    }
  };
  if (which.empty())
    for (size_t u = 0; u < p.units.size(); ++u) add(u);
  else
    for (int u : which) add(static_cast<size_t>(u));
  return ch;
}

// Short description of a unit's option for the report ("4", "4/g32", "a4").
std::string option_name(const ChoiceUnit& U, int o) {
  if (U.is_act()) return "a" + std::to_string(U.bits[o]);
  return std::to_string(U.bits[o]) + (U.group[o] ? "/g" + std::to_string(U.group[o]) : "");
}

}  // namespace

nlohmann::json check_and_repair(AllocContext& ctx, const SensitivityTable& table, const QuantPlan& base,
                                const Dataset& calib, const Resolver& resolve, const RepairOptions& opts,
                                SensitivityProbe* table_probe) {
  const std::string signal = resolve_signal(ctx.opts.signal, &table);
  nlohmann::json rep = {{"signal", signal}, {"tolerance", opts.tolerance}};
  if (!is_data_signal(signal)) {
    rep["skipped"] = "the " + signal + " signal is not measured on data; the check needs kl, dl, noise or dacc";
    return rep;
  }
  QuantPlan ref = base;
  for (auto& L : ref.layers)
    if (!L.pinned) L.weight_scheme.bits = table.ref_bits;
  update_cost(ref);
  std::unique_ptr<SensitivityProbe> own;
  if (!table_probe) {
    auto sub = head_dataset(calib, table.samples);
    own = std::make_unique<SensitivityProbe>(ctx.prepared, ref, *sub, 0);  // batches as the table's
  }
  SensitivityProbe& probe = table_probe ? *table_probe : *own;
  MIXQ_ASSERT(probe.samples() == table.samples, "additivity check: probe of ", probe.samples(), " samples for a table of ",
              table.samples);
  Problem p = context_problem(ctx, true, &base);

  auto signal_of = [&](const ProbeMetrics& m) {
    return *measured_signal(signal, m, probe.reference(), probe.has_labels());
  };
  auto measure_change = [&](const ProbeChange& ch) { return signal_of(probe.run_change(ch)); };
  auto measure = [&](const Choice& c) { return measure_change(change_of(p, c, ref, {})); };
  auto gap_ok = [&](double measured, double predicted) {
    return std::fabs(measured - predicted) <= opts.tolerance * std::max(std::fabs(measured), std::fabs(predicted)) + 1e-12;
  };
  // A unit at its reference option: the table's zero (weights at ref bits in the plan's
  // granularity; activations at their highest option, the plan's bits).
  auto at_ref = [&](int u, int o) {
    const ChoiceUnit& U = p.units[u];
    if (U.is_act()) return o + 1 == static_cast<int>(U.bits.size());
    return U.bits[o] == table.ref_bits && U.group[o] == 0;
  };

  // Pairs of units with layers inside one block (unpinned, different units).
  std::set<std::pair<int, int>> block_pairs;
  {
    std::map<std::string, int> index;
    for (size_t i = 0; i < base.layers.size(); ++i) index[base.layers[i].name] = static_cast<int>(i);
    std::vector<std::vector<int>> units_of(base.layers.size());  // plan layer -> units it belongs to
    for (size_t u = 0; u < p.units.size(); ++u)
      if (!p.units[u].fixed())
        for (int i : p.units[u].layers) units_of[i].push_back(static_cast<int>(u));
    for (const auto& unit : partition_units(ctx.prepared, find_layers(ctx.prepared))) {
      std::set<int> in;
      for (const auto& name : unit.layers)
        if (auto it = index.find(name); it != index.end())
          for (int u : units_of[it->second]) in.insert(u);
      for (int a : in)
        for (int b : in)
          if (a < b) block_pairs.insert({a, b});
    }
  }

  // Which plan to keep: with a loss objective the lowest measured loss; with --max-drop (size
  // objective, loss as a constraint) the smallest plan whose measured loss meets the limit.
  double drop_limit = 0;
  for (const auto& k : p.constraints)
    if (k.name == "max_drop") drop_limit = k.limit;
  auto score = [&](const Choice& c, double measured) {
    if (p.objective == "loss") return measured;
    return measured <= drop_limit ? objective(p, c) : 1e300 + measured;
  };
  Choice cur = choice_of(p, ctx.plan), best = cur;
  double best_measured = measure(cur), best_score = score(cur, best_measured);
  nlohmann::json rounds = nlohmann::json::array();
  nlohmann::json pairs = nlohmann::json::array();
  std::map<std::tuple<int, int, int, int>, double> measured_pairs;
  bool ok = false;
  double cur_measured = best_measured;
  for (int round = 0;; ++round) {
    const double predicted = predicted_loss(p, cur), measured = cur_measured;
    ok = gap_ok(measured, predicted);
    rounds.push_back({{"predicted", predicted}, {"measured", measured}, {"within_tolerance", ok}});
    if (score(cur, measured) < best_score) {
      best_score = score(cur, measured);
      best_measured = measured;
      best = cur;
    }
    if (ok || round >= opts.rounds) break;
    // The worst not-yet-measured in-block pairs of the current choice (both units reduced).
    std::vector<std::pair<double, std::pair<int, int>>> cand;
    for (auto [ua, ub] : block_pairs) {
      if (at_ref(ua, cur[ua]) || at_ref(ub, cur[ub])) continue;
      if (measured_pairs.count({ua, cur[ua], ub, cur[ub]})) continue;
      cand.push_back({p.units[ua].loss[cur[ua]] + p.units[ub].loss[cur[ub]], {ua, ub}});
    }
    std::sort(cand.begin(), cand.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
    if (cand.empty()) {
      rep["stopped"] = "no unmeasured pair of reduced units inside one block";
      break;
    }
    // The round's pairs measured together (in cut order: probe.run_changes), used in rank order.
    const size_t npairs = std::min(cand.size(), static_cast<size_t>(opts.max_pairs));
    std::vector<ProbeChange> changes;
    for (size_t n = 0; n < npairs; ++n)
      changes.push_back(change_of(p, cur, ref, {cand[n].second.first, cand[n].second.second}));
    const std::vector<ProbeMetrics> joints = probe.run_changes(changes);
    for (size_t n = 0; n < npairs; ++n) {
      auto [ua, ub] = cand[n].second;
      const double joint = signal_of(joints[n]);
      const double inter = joint - p.units[ua].loss[cur[ua]] - p.units[ub].loss[cur[ub]];
      measured_pairs[{ua, cur[ua], ub, cur[ub]}] = inter;
      p.pairs.push_back({ua, cur[ua], ub, cur[ub], inter, {}});
      auto label = [&](int u) {
        const ChoiceUnit& U = p.units[u];
        return U.is_act() ? "activation " + U.act : base.layers[U.layers.front()].name;
      };
      pairs.push_back({{"units", {label(ua), label(ub)}},
                       {"options", {option_name(p.units[ua], cur[ua]), option_name(p.units[ub], cur[ub])}},
                       {"pair", joint},
                       {"singles", {p.units[ua].loss[cur[ua]], p.units[ub].loss[cur[ub]]}},
                       {"interaction", inter}});
    }
    std::optional<Choice> next = resolve(p);
    if (!next || *next == cur) {
      rounds.back()["resolved"] = next ? "same plan" : "no feasible plan";
      if (!next) break;
      continue;  // the same plan with more pairs known: its prediction now includes them
    }
    cur = *next;
    cur_measured = measure(cur);
  }
  rep["rounds"] = rounds;
  rep["pairs"] = pairs;
  const bool changed = best != choice_of(p, ctx.plan);
  rep["changed"] = changed;
  rep["measured"] = best_measured;
  if (changed) {
    nlohmann::json params = ctx.plan.search_params;
    apply_choice(p, best, ctx.plan);
    params["predicted"] = predicted_loss(p, best);
    params["repaired"] = true;
    ctx.plan.search_params = params;
  }
  log::verbose("additivity (" + signal + "): " + rounds.dump());
  return rep;
}

}  // namespace mixq
