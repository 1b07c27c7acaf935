#include "search/problem.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/log.h"
#include "mixq/error.h"
#include "search/hw_spec.h"
#include "search/latency.h"
#include "search/sensitivity.h"

namespace mixq {

namespace {

// Per candidate set: bits -> signal, made non-increasing in bits (see build_problem).
std::map<int, double> monotone_signal(const std::map<int, SensEntry>& bits, const std::string& signal) {
  std::map<int, double> out;
  double run = -1e300;
  for (auto it = bits.rbegin(); it != bits.rend(); ++it) {
    run = std::max(run, signal_value(it->second, signal));
    out[it->first] = run;
  }
  return out;
}

}  // namespace

Budget effective_budget(const Budget& b, double budget_avg_wbits) {
  Budget e = b;
  if (budget_avg_wbits > 0 && e.avg_wbits <= 0) e.avg_wbits = budget_avg_wbits;
  return e;
}

Problem build_problem(const QuantPlan& plan, const SensitivityTable* table, const std::string& signal_arg,
                      const Budget& budget, const std::vector<std::vector<int>>& groups_in, const HwSpec* hw,
                      const LatencyTable* latency) {
  if (table) require_signal(*table, signal_arg, "sensitivity table");  // unknown or absent signals fail here
  const std::string signal = resolve_signal(signal_arg, table);
  MIXQ_CHECK(budget.latency_ms <= 0 || latency, ErrorKind::kInvalidArgument,
             "--budget-latency-ms needs a per-layer latency table (--latency-table FILE; see docs/hwspec.md)");
  Problem p;
  p.signal = signal;
  p.objective = budget.max_drop >= 0 ? "size_bits" : "loss";
  for (const auto& L : plan.layers) p.base_weight.push_back(L.weight_scheme);
  std::vector<std::vector<int>> groups = groups_in;
  std::vector<char> grouped(plan.layers.size(), 0);
  for (const auto& g : groups)
    for (int i : g) grouped[i] = 1;
  for (size_t i = 0; i < plan.layers.size(); ++i)
    if (!grouped[i]) groups.push_back({static_cast<int>(i)});
  std::sort(groups.begin(), groups.end());

  double total_params = 0;
  for (const auto& L : plan.layers) total_params += double(L.params);
  // The plan layer at option (bits, group) of its unit (pinned layers keep their scheme).
  auto at_option = [&](int i, int bits, int64_t group) {
    LayerPlan c = plan.layers[i];
    if (!c.pinned) {
      c.weight_scheme = p.base_weight[i];
      c.weight_scheme = candidate_scheme(c, bits, group);
    }
    return c;
  };
  auto allows_group = [&](const LayerPlan& L) {
    if (!hw) return true;
    const auto& g = hw->rule(L.op).granularity;
    return std::find(g.begin(), g.end(), "per_group") != g.end();
  };
  std::vector<std::map<int, double>> sig(plan.layers.size());
  std::vector<std::map<int64_t, std::map<int, double>>> gsig(plan.layers.size());
  for (const auto& grp : groups) {
    ChoiceUnit u;
    u.layers = grp;
    int pinned_bits = 0;
    std::set<int> cand = {2, 3, 4, 5, 6, 7, 8};
    std::set<int64_t> gcand;  // group sizes every layer of the unit has (and may use)
    bool first = true;
    for (int i : grp) {
      const LayerPlan& L = plan.layers[i];
      if (L.pinned) {
        pinned_bits = L.weight_scheme.bits;
        continue;
      }
      std::set<int> keep;
      std::set<int64_t> gkeep;
      if (table) {
        const LayerSens* ls = table->find(L.name);
        MIXQ_CHECK(ls, ErrorKind::kInvalidArgument, "layer '", L.name,
                   "' is not in the sensitivity table (was it made for another model or with other pinning?); "
                   "recompute the table");
        sig[i] = monotone_signal(ls->bits, signal);
        for (const auto& [b, v] : sig[i]) keep.insert(b);
        if (allows_group(L))
          for (const auto& [g, m] : ls->groups) {
            gsig[i][g] = monotone_signal(m, signal);
            gkeep.insert(g);
          }
      } else {
        keep = cand;
      }
      if (hw) {
        std::set<int> allowed;
        for (int b : allowed_wbits(*hw, L))
          if (keep.count(b)) allowed.insert(b);
        keep = allowed;
      }
      if (latency && budget.latency_ms > 0) {
        auto it = latency->ms.find(L.name);
        MIXQ_CHECK(it != latency->ms.end(), ErrorKind::kInvalidArgument, latency->path, ": no latency for layer '",
                   L.name, "'; every quantizable layer needs a row");
        std::set<int> with;
        for (int b : keep)
          if (it->second.count(b)) with.insert(b);
        keep = with;
        gkeep.clear();  // the latency table is measured at the plan's granularity
      }
      std::set<int> both;
      std::set_intersection(cand.begin(), cand.end(), keep.begin(), keep.end(), std::inserter(both, both.begin()));
      cand = both;
      if (first) {
        gcand = gkeep;
      } else {
        std::set<int64_t> g2;
        for (int64_t g : gcand)
          if (gkeep.count(g)) g2.insert(g);
        gcand = g2;
      }
      first = false;
    }
    // Options: (bits, group, loss, stored bits).
    struct Opt {
      int bits;
      int64_t group;
      double loss, size;
    };
    std::vector<Opt> opts;
    auto option = [&](int b, int64_t g) {
      Opt o{b, g, 0, 0};
      for (int i : grp) {
        const LayerPlan& L = plan.layers[i];
        if (!L.pinned && table) o.loss += g ? gsig[i].at(g).at(b) : sig[i].at(b);
        o.size += layer_size_bits(at_option(i, b, g));
      }
      return o;
    };
    if (pinned_bits) {
      opts.push_back(option(pinned_bits, 0));
    } else {
      std::string names;
      for (int i : grp) names += (names.empty() ? "'" : ", '") + plan.layers[i].name + "'";
      MIXQ_CHECK(!cand.empty(), ErrorKind::kInvalidArgument, "no weight bit-width is allowed for layer(s) ", names,
                 " (the hardware spec, the table's measured bits and the latency table have none in common)");
      for (int b : cand) {
        const Opt base = option(b, 0);
        opts.push_back(base);
        for (int64_t g : gcand) {
          bool measured = true;
          for (int i : grp) measured = measured && gsig[i].count(g) && gsig[i][g].count(b);
          if (!measured) continue;
          Opt o = option(b, g);
          if (o.loss < base.loss) opts.push_back(o);  // a group that does not help only costs bytes
        }
      }
      std::stable_sort(opts.begin(), opts.end(), [](const Opt& x, const Opt& y) { return x.size < y.size; });
    }
    for (const Opt& o : opts) {
      u.bits.push_back(o.bits);
      u.group.push_back(o.group);
      u.loss.push_back(o.loss);
      u.size_bits.push_back(o.size);
    }
    p.units.push_back(std::move(u));
  }
  const size_t weight_units = p.units.size();
  std::vector<int> weight_unit_of(plan.layers.size(), -1);
  for (size_t u = 0; u < weight_units; ++u)
    for (int i : p.units[u].layers) weight_unit_of[i] = static_cast<int>(u);

  // Activation units (see the header for when).
  std::vector<int> act_unit_of(plan.layers.size(), -1);
  const bool data_signal = is_data_signal(signal);
  const bool want_acts = budget.latency_ms <= 0 && (table ? budget.bops > 0 && data_signal : hw != nullptr);
  if (want_acts) {
    std::map<std::string, std::vector<int>> readers;
    std::vector<std::string> order;
    for (size_t i = 0; i < plan.layers.size(); ++i) {
      const LayerPlan& L = plan.layers[i];
      if (!L.quantize_input) continue;
      if (!readers.count(L.input)) order.push_back(L.input);
      readers[L.input].push_back(static_cast<int>(i));
    }
    for (const auto& t : order) {
      const auto& rd = readers[t];
      bool pinned = false;
      for (int i : rd) pinned = pinned || plan.layers[i].pinned;
      if (pinned) continue;
      std::map<int, double> opts;  // bits -> loss
      const int ref_bits = plan.layers[rd[0]].input_scheme.bits;
      if (table) {
        const ActSens* a = table->find_act(t);
        if (!a) continue;
        opts = monotone_signal(a->bits, signal);
      } else {
        for (int b = 2; b <= ref_bits; ++b) opts[b] = 0;
      }
      if (hw)
        for (int i : rd) {
          const auto& ab = hw->rule(plan.layers[i].op).act_bits;
          for (auto it = opts.begin(); it != opts.end();)
            it = std::find(ab.begin(), ab.end(), it->first) == ab.end() ? opts.erase(it) : std::next(it);
        }
      if (opts.size() < 2) continue;
      ChoiceUnit u;
      u.act = t;
      u.layers = rd;
      for (const auto& [b, l] : opts) {
        u.bits.push_back(b);
        u.group.push_back(0);
        u.loss.push_back(l);
        u.size_bits.push_back(0);
      }
      for (int i : rd) act_unit_of[i] = static_cast<int>(p.units.size());
      p.units.push_back(std::move(u));
    }
  }

  const double other_bits = double(plan.other_bytes + plan.structure_bytes) * 8;
  // coef_of(layer at the option, plan layer index) for weight units; activation units cost 0
  // in every constraint but max_drop (their BOPs are pair terms, added below).
  auto add = [&](const std::string& name, double limit, auto coef_of, std::function<double(double)> to_user) {
    Constraint k;
    k.name = name;
    k.limit = limit;
    k.to_user = std::move(to_user);
    for (const auto& u : p.units) {
      std::vector<double> c;
      for (size_t o = 0; o < u.bits.size(); ++o) {
        double s = 0;
        if (!u.is_act())
          for (int i : u.layers) s += coef_of(at_option(i, u.bits[o], u.group[o]), i);
        c.push_back(s);
      }
      k.coef.push_back(std::move(c));
    }
    p.constraints.push_back(std::move(k));
  };
  if (budget.avg_wbits > 0)
    add("avg_wbits", budget.avg_wbits * total_params,
        [&](const LayerPlan& L, int i) {
          // Extra scale bits of a per-group option count as weight bits (see the header).
          LayerPlan own = L;
          own.weight_scheme.granularity = p.base_weight[i].granularity;
          own.weight_scheme.group_size = p.base_weight[i].group_size;
          return double(L.params) * L.weight_scheme.bits + layer_size_bits(L) - layer_size_bits(own);
        },
        [total_params](double x) { return x / total_params; });
  if (budget.bytes > 0)
    add("size_bytes", double(budget.bytes) * 8 - other_bits, [](const LayerPlan& L, int) { return layer_size_bits(L); },
        [other_bits](double x) { return std::ceil((x + other_bits) / 8); });
  if (budget.bops > 0) {
    add("bops", budget.bops,
        [&](const LayerPlan& L, int i) { return act_unit_of[i] >= 0 ? 0.0 : layer_bops(L); },
        [](double x) { return x; });
    // Layers whose input is an activation unit: BOPs per (weight option, activation option).
    const size_t kb = p.constraints.size() - 1;
    std::map<std::pair<int, int>, std::vector<int>> by_units;
    for (size_t i = 0; i < plan.layers.size(); ++i)
      if (act_unit_of[i] >= 0) by_units[{weight_unit_of[i], act_unit_of[i]}].push_back(static_cast<int>(i));
    for (const auto& [uv, layers] : by_units) {
      const ChoiceUnit &W = p.units[uv.first], &A = p.units[uv.second];
      for (size_t ow = 0; ow < W.bits.size(); ++ow)
        for (size_t oa = 0; oa < A.bits.size(); ++oa) {
          PairTerm t{uv.first, static_cast<int>(ow), uv.second, static_cast<int>(oa), 0, {}};
          t.coef.assign(kb + 1, 0.0);
          for (int i : layers) {
            LayerPlan L = at_option(i, W.bits[ow], W.group[ow]);
            L.input_scheme.bits = A.bits[oa];
            t.coef[kb] += layer_bops(L);
          }
          p.pairs.push_back(std::move(t));
        }
    }
  }
  if (budget.latency_ms > 0)
    add("latency_ms", budget.latency_ms,
        [latency](const LayerPlan& L, int) {
          auto it = latency->ms.find(L.name);
          if (it == latency->ms.end() || !it->second.count(L.weight_scheme.bits)) return 0.0;  // pinned layers without rows
          return it->second.at(L.weight_scheme.bits);
        },
        [](double x) { return x; });
  if (budget.max_drop >= 0) {
    Constraint k;
    k.name = "max_drop";
    k.limit = budget.max_drop;
    k.to_user = [](double x) { return x; };
    for (const auto& u : p.units) k.coef.push_back(u.loss);
    p.constraints.push_back(std::move(k));
  }
  for (auto& t : p.pairs) t.coef.resize(p.constraints.size(), 0.0);

  // Objective, with a tie-break far below any measured difference: among options predicting the
  // same loss (e.g. 7 and 8 bits both 0 after the monotone fix) the smaller one wins; activation
  // units (no size) prefer the more accurate option when the objective is the size.
  double max_loss = 1e-12, total_size = 1;
  for (const auto& u : p.units) {
    for (double l : u.loss) max_loss = std::max(max_loss, std::fabs(l));
    total_size += u.size_bits.back();
  }
  const double tie = 1e-7 * max_loss / total_size;
  for (auto& u : p.units)
    for (size_t o = 0; o < u.bits.size(); ++o) {
      if (p.objective == "loss")
        u.obj.push_back(u.loss[o] + tie * u.size_bits[o]);
      else
        u.obj.push_back(u.is_act() ? 1e-9 * u.loss[o] / max_loss : u.size_bits[o]);
    }
  return p;
}

double pair_sum(const Problem& p, const Choice& c) {
  double s = 0;
  for (const auto& t : p.pairs)
    if (c[t.ua] == t.oa && c[t.ub] == t.ob) s += t.loss;
  return s;
}

double objective(const Problem& p, const Choice& c) {
  double s = p.objective == "loss" ? pair_sum(p, c) : 0;
  for (size_t u = 0; u < p.units.size(); ++u) s += p.units[u].obj[c[u]];
  return s;
}

double constraint_sum(const Constraint& k, const Choice& c) {
  double s = 0;
  for (size_t u = 0; u < c.size(); ++u) s += k.coef[u][c[u]];
  return s;
}

double pair_coef(const Problem& p, const PairTerm& t, size_t k) {
  return (k < t.coef.size() ? t.coef[k] : 0) + (p.constraints[k].name == "max_drop" ? t.loss : 0);
}

double constraint_total(const Problem& p, size_t k, const Choice& c) {
  double s = constraint_sum(p.constraints[k], c);
  for (const auto& t : p.pairs)
    if (c[t.ua] == t.oa && c[t.ub] == t.ob) s += pair_coef(p, t, k);
  return s;
}

double violation(const Problem& p, const Choice& c) {
  double v = 0;
  for (size_t k = 0; k < p.constraints.size(); ++k) {
    const double s = constraint_total(p, k, c), limit = p.constraints[k].limit;
    if (s > limit) v += (s - limit) / std::max(1e-30, std::fabs(limit));
  }
  return v;
}

bool feasible(const Problem& p, const Choice& c, double slack) {
  for (size_t k = 0; k < p.constraints.size(); ++k) {
    const double limit = p.constraints[k].limit;
    if (constraint_total(p, k, c) > limit + slack * std::max(1.0, std::fabs(limit))) return false;
  }
  return true;
}

Choice lowest_choice(const Problem& p) { return Choice(p.units.size(), 0); }

Choice highest_choice(const Problem& p) {
  Choice c(p.units.size());
  for (size_t u = 0; u < c.size(); ++u) c[u] = static_cast<int>(p.units[u].bits.size()) - 1;
  return c;
}

Choice fallback_choice(const Problem& p) { return p.objective == "size_bits" ? highest_choice(p) : lowest_choice(p); }

double predicted_loss(const Problem& p, const Choice& c) {
  double s = pair_sum(p, c);
  for (size_t u = 0; u < c.size(); ++u) s += p.units[u].loss[c[u]];
  return s;
}

void apply_choice(const Problem& p, const Choice& c, QuantPlan& plan) {
  for (size_t u = 0; u < p.units.size(); ++u) {
    const ChoiceUnit& U = p.units[u];
    for (int i : U.layers) {
      LayerPlan& L = plan.layers[i];
      if (L.pinned) continue;
      if (U.is_act()) {
        L.input_scheme.bits = U.bits[c[u]];
        continue;
      }
      L.weight_scheme = p.base_weight[i];
      L.weight_scheme.bits = U.bits[c[u]];
      if (U.group[c[u]] > 0) {
        L.weight_scheme.granularity = Granularity::kPerGroup;
        L.weight_scheme.group_size = U.group[c[u]];
      }
    }
  }
  update_cost(plan);
}

nlohmann::json infeasibility(const Problem& p, const QuantPlan& plan) {
  nlohmann::json out = nlohmann::json::array();
  for (size_t ki = 0; ki < p.constraints.size(); ++ki) {
    const Constraint& k = p.constraints[ki];
    // The best each unit can do for this constraint on its own; pair coefficients (BOPs of layers
    // with an activation unit) at every unit's cheapest option, where they are smallest.
    double best = 0;
    std::vector<std::pair<double, size_t>> share;
    for (size_t u = 0; u < p.units.size(); ++u) {
      double m = *std::min_element(k.coef[u].begin(), k.coef[u].end());
      best += m;
      share.emplace_back(m, u);
    }
    for (const auto& t : p.pairs)
      if (t.oa == 0 && t.ob == 0 && ki < t.coef.size()) {
        best += t.coef[ki];
        share[t.ua].first += t.coef[ki];
      }
    if (best <= k.limit + 1e-9 * std::max(1.0, std::fabs(k.limit))) continue;
    // Layers held above the global minimum (pinned, or the spec's lowest allowed bits > 2) are
    // what the user can change: list them first, then the largest shares.
    auto held = [&](size_t u) { return p.units[u].fixed() || p.units[u].bits.front() > 2; };
    std::stable_sort(share.begin(), share.end(), [&](const auto& a, const auto& b) {
      if (held(a.second) != held(b.second)) return held(a.second);
      return a.first > b.first;
    });
    nlohmann::json binding = nlohmann::json::array();
    for (size_t n = 0; n < share.size() && binding.size() < 5; ++n) {
      const ChoiceUnit& u = p.units[share[n].second];
      for (int i : u.layers) {
        const LayerPlan& L = plan.layers[i];
        std::string why = L.pinned ? "pinned at " + std::to_string(L.weight_scheme.bits) + " bits (--pin-bits)"
                                   : "lowest allowed " + std::to_string(u.bits.front()) + " bits";
        binding.push_back({{"layer", L.name}, {"share", best > 0 ? share[n].first / best : 0.0}, {"why", why}});
      }
    }
    out.push_back({{"budget", k.name}, {"requested", k.to_user(k.limit)}, {"minimum_feasible", k.to_user(best)},
                   {"binding_layers", binding}});
  }
  if (out.empty()) out.push_back({{"budget", "combined"}, {"why", "each budget is reachable alone but not all together"}});
  return out;
}

void finish_plan(const Problem& p, const Choice& c, const std::string& search, nlohmann::json params,
                 const Budget& budget, QuantPlan& plan) {
  apply_choice(p, c, plan);
  plan.search = search;
  if (!p.signal.empty()) params["signal"] = p.signal;
  params["predicted"] = predicted_loss(p, c);
  if (!feasible(p, c, 1e-6)) {
    nlohmann::json inf = infeasibility(p, plan);
    params["infeasible"] = inf;
    std::string msg = search + ": the budget cannot be met; using the closest plan.";
    for (const auto& r : inf) {
      if (!r.contains("requested")) continue;
      msg += " " + r["budget"].get<std::string>() + ": asked " + r["requested"].dump() + ", minimum feasible " +
             r["minimum_feasible"].dump() + " (binding:";
      for (const auto& b : r["binding_layers"]) msg += " " + b["layer"].get<std::string>() + " [" + b["why"].get<std::string>() + "]";
      msg += ")";
    }
    log::warn(msg);
  }
  plan.search_params = std::move(params);
  plan.budget = budget.to_json();
  update_cost(plan);
}

}  // namespace mixq
