#include "search/additivity.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

#include "core/log.h"
#include "graph/blocks.h"
#include "graph/layers.h"
#include "search/context.h"
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

// The option index of every unit for the plan's current bits.
Choice choice_of(const Problem& p, const QuantPlan& plan) {
  Choice c(p.units.size(), 0);
  for (size_t u = 0; u < p.units.size(); ++u) {
    const int b = plan.layers[p.units[u].layers.front()].weight_scheme.bits;
    for (size_t o = 0; o < p.units[u].bits.size(); ++o)
      if (p.units[u].bits[o] == b) c[u] = static_cast<int>(o);
  }
  return c;
}

}  // namespace

nlohmann::json check_and_repair(AllocContext& ctx, const SensitivityTable& table, const QuantPlan& base,
                                const Dataset& calib, const Resolver& resolve, const RepairOptions& opts) {
  const std::string signal = ctx.opts.signal;
  nlohmann::json rep = {{"signal", signal}, {"tolerance", opts.tolerance}};
  if (!measured_signal(signal, ProbeMetrics{}, ProbeMetrics{}, true)) {
    rep["skipped"] = "the " + signal + " signal is not measured on data; the check needs kl, dl, noise or dacc";
    return rep;
  }
  QuantPlan ref = base;
  for (auto& L : ref.layers)
    if (!L.pinned) L.weight_scheme.bits = table.ref_bits;
  update_cost(ref);
  auto sub = head_dataset(calib, table.samples);
  SensitivityProbe probe(ctx.prepared, ref, *sub, 256);
  Problem p = context_problem(ctx, true);

  std::map<int, int> unit_of;  // plan layer -> unit
  for (size_t u = 0; u < p.units.size(); ++u)
    for (int i : p.units[u].layers) unit_of[i] = static_cast<int>(u);
  auto measure = [&](const Choice& c) {
    std::map<std::string, int> bits;
    for (size_t u = 0; u < p.units.size(); ++u)
      for (int i : p.units[u].layers)
        if (!ctx.plan.layers[i].pinned) bits[ctx.plan.layers[i].name] = p.units[u].bits[c[u]];
    return *measured_signal(signal, probe.run_bits(bits), probe.reference(), probe.has_labels());
  };
  auto gap_ok = [&](double measured, double predicted) {
    return std::fabs(measured - predicted) <= opts.tolerance * std::max(std::fabs(measured), std::fabs(predicted)) + 1e-12;
  };

  // Pairs of plan layers inside one block (both quantizable, both unpinned, different units).
  std::vector<std::pair<int, int>> block_pairs;
  {
    std::map<std::string, int> index;
    for (size_t i = 0; i < ctx.plan.layers.size(); ++i) index[ctx.plan.layers[i].name] = static_cast<int>(i);
    for (const auto& unit : partition_units(ctx.prepared, find_layers(ctx.prepared))) {
      std::vector<int> in;
      for (const auto& name : unit.layers)
        if (auto it = index.find(name); it != index.end() && !ctx.plan.layers[it->second].pinned) in.push_back(it->second);
      for (size_t a = 0; a < in.size(); ++a)
        for (size_t b = a + 1; b < in.size(); ++b)
          if (unit_of[in[a]] != unit_of[in[b]]) block_pairs.emplace_back(in[a], in[b]);
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
    // The worst not-yet-measured in-block pairs of the current choice (both layers reduced).
    std::vector<std::pair<double, std::pair<int, int>>> cand;
    for (auto [a, b] : block_pairs) {
      const int ua = unit_of[a], ub = unit_of[b];
      const ChoiceUnit &A = p.units[ua], &B = p.units[ub];
      if (A.bits[cur[ua]] == table.ref_bits || B.bits[cur[ub]] == table.ref_bits) continue;
      if (measured_pairs.count({ua, cur[ua], ub, cur[ub]})) continue;
      cand.push_back({A.loss[cur[ua]] + B.loss[cur[ub]], {a, b}});
    }
    std::sort(cand.begin(), cand.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
    if (cand.empty()) {
      rep["stopped"] = "no unmeasured pair of reduced layers inside one block";
      break;
    }
    for (size_t n = 0; n < cand.size() && n < static_cast<size_t>(opts.max_pairs); ++n) {
      auto [a, b] = cand[n].second;
      const int ua = unit_of[a], ub = unit_of[b];
      std::map<std::string, int> bits = {{ctx.plan.layers[a].name, p.units[ua].bits[cur[ua]]},
                                         {ctx.plan.layers[b].name, p.units[ub].bits[cur[ub]]}};
      const double joint = *measured_signal(signal, probe.run_bits(bits), probe.reference(), probe.has_labels());
      const double inter = joint - p.units[ua].loss[cur[ua]] - p.units[ub].loss[cur[ub]];
      measured_pairs[{ua, cur[ua], ub, cur[ub]}] = inter;
      p.pairs.push_back({ua, cur[ua], ub, cur[ub], inter});
      pairs.push_back({{"layers", {ctx.plan.layers[a].name, ctx.plan.layers[b].name}},
                       {"bits", {p.units[ua].bits[cur[ua]], p.units[ub].bits[cur[ub]]}},
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
