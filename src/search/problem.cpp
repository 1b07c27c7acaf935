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

LayerPlan at_bits(const LayerPlan& L, int b) {
  LayerPlan c = L;
  c.weight_scheme.bits = b;
  return c;
}

// Per layer: bits -> signal, made non-increasing in bits (see build_problem).
std::map<int, double> monotone_signal(const LayerSens& ls, const std::string& signal) {
  std::map<int, double> out;
  double run = -1e300;
  for (auto it = ls.bits.rbegin(); it != ls.bits.rend(); ++it) {
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

Problem build_problem(const QuantPlan& plan, const SensitivityTable* table, const std::string& signal,
                      const Budget& budget, const std::vector<std::vector<int>>& groups_in, const HwSpec* hw,
                      const LatencyTable* latency) {
  if (table) require_signal(*table, signal, "sensitivity table");  // unknown or absent signals fail here
  MIXQ_CHECK(budget.latency_ms <= 0 || latency, ErrorKind::kInvalidArgument,
             "--budget-latency-ms needs a per-layer latency table (--latency-table FILE; see docs/hwspec.md)");
  Problem p;
  p.signal = signal;
  p.objective = budget.max_drop >= 0 ? "size_bits" : "loss";
  std::vector<std::vector<int>> groups = groups_in;
  std::vector<char> grouped(plan.layers.size(), 0);
  for (const auto& g : groups)
    for (int i : g) grouped[i] = 1;
  for (size_t i = 0; i < plan.layers.size(); ++i)
    if (!grouped[i]) groups.push_back({static_cast<int>(i)});
  std::sort(groups.begin(), groups.end());

  double total_params = 0;
  for (const auto& L : plan.layers) total_params += double(L.params);
  std::vector<std::map<int, double>> sig(plan.layers.size());
  for (const auto& grp : groups) {
    ChoiceUnit u;
    u.layers = grp;
    int pinned_bits = 0;
    std::set<int> cand = {2, 3, 4, 5, 6, 7, 8};
    for (int i : grp) {
      const LayerPlan& L = plan.layers[i];
      if (L.pinned) {
        pinned_bits = L.weight_scheme.bits;
        continue;
      }
      std::set<int> keep;
      if (table) {
        const LayerSens* ls = table->find(L.name);
        MIXQ_CHECK(ls, ErrorKind::kInvalidArgument, "layer '", L.name,
                   "' is not in the sensitivity table (was it made for another model or with other pinning?); "
                   "recompute the table");
        sig[i] = monotone_signal(*ls, signal);
        for (const auto& [b, v] : sig[i]) keep.insert(b);
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
      }
      std::set<int> both;
      std::set_intersection(cand.begin(), cand.end(), keep.begin(), keep.end(), std::inserter(both, both.begin()));
      cand = both;
    }
    if (pinned_bits) {
      u.bits = {pinned_bits};
    } else {
      std::string names;
      for (int i : grp) names += (names.empty() ? "'" : ", '") + plan.layers[i].name + "'";
      MIXQ_CHECK(!cand.empty(), ErrorKind::kInvalidArgument, "no weight bit-width is allowed for layer(s) ", names,
                 " (the hardware spec, the table's measured bits and the latency table have none in common)");
      u.bits.assign(cand.begin(), cand.end());
    }
    for (int b : u.bits) {
      double loss = 0, size = 0;
      for (int i : grp) {
        const LayerPlan& L = plan.layers[i];
        if (!L.pinned && table) loss += sig[i].at(b);
        size += layer_size_bits(at_bits(L, L.pinned ? L.weight_scheme.bits : b));
      }
      u.loss.push_back(loss);
      u.size_bits.push_back(size);
    }
    p.units.push_back(std::move(u));
  }

  const double other_bits = double(plan.other_bytes + plan.structure_bytes) * 8;
  auto add = [&](const std::string& name, double limit, auto coef_of, std::function<double(double)> to_user) {
    Constraint k;
    k.name = name;
    k.limit = limit;
    k.to_user = std::move(to_user);
    for (const auto& u : p.units) {
      std::vector<double> c;
      for (size_t o = 0; o < u.bits.size(); ++o) {
        double s = 0;
        for (int i : u.layers) {
          const LayerPlan& L = plan.layers[i];
          s += coef_of(L, L.pinned ? L.weight_scheme.bits : u.bits[o]);
        }
        c.push_back(s);
      }
      k.coef.push_back(std::move(c));
    }
    p.constraints.push_back(std::move(k));
  };
  if (budget.avg_wbits > 0)
    add("avg_wbits", budget.avg_wbits * total_params, [](const LayerPlan& L, int b) { return double(L.params) * b; },
        [total_params](double x) { return x / total_params; });
  if (budget.bytes > 0)
    add("size_bytes", double(budget.bytes) * 8 - other_bits,
        [](const LayerPlan& L, int b) { return layer_size_bits(at_bits(L, b)); },
        [other_bits](double x) { return std::ceil((x + other_bits) / 8); });
  if (budget.bops > 0)
    add("bops", budget.bops, [](const LayerPlan& L, int b) { return layer_bops(at_bits(L, b)); },
        [](double x) { return x; });
  if (budget.latency_ms > 0)
    add("latency_ms", budget.latency_ms,
        [latency](const LayerPlan& L, int b) {
          auto it = latency->ms.find(L.name);
          if (it == latency->ms.end() || !it->second.count(b)) return 0.0;  // pinned layers without rows
          return it->second.at(b);
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

  // Objective, with a tie-break far below any measured difference: among options predicting the
  // same loss (e.g. 7 and 8 bits both 0 after the monotone fix) the smaller one wins.
  double max_loss = 1e-12, total_size = 1;
  for (const auto& u : p.units) {
    for (double l : u.loss) max_loss = std::max(max_loss, std::fabs(l));
    total_size += u.size_bits.back();
  }
  const double tie = 1e-7 * max_loss / total_size;
  for (auto& u : p.units)
    for (size_t o = 0; o < u.bits.size(); ++o)
      u.obj.push_back(p.objective == "loss" ? u.loss[o] + tie * u.size_bits[o] : u.size_bits[o]);
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

bool feasible(const Problem& p, const Choice& c, double slack) {
  for (const auto& k : p.constraints) {
    const double sum = constraint_sum(k, c) + (k.name == "max_drop" ? pair_sum(p, c) : 0);
    if (sum > k.limit + slack * std::max(1.0, std::fabs(k.limit))) return false;
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
  for (size_t u = 0; u < p.units.size(); ++u)
    for (int i : p.units[u].layers)
      if (!plan.layers[i].pinned) plan.layers[i].weight_scheme.bits = p.units[u].bits[c[u]];
  update_cost(plan);
}

nlohmann::json infeasibility(const Problem& p, const QuantPlan& plan) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& k : p.constraints) {
    // The best each unit can do for this constraint on its own.
    double best = 0;
    std::vector<std::pair<double, size_t>> share;
    for (size_t u = 0; u < p.units.size(); ++u) {
      double m = *std::min_element(k.coef[u].begin(), k.coef[u].end());
      best += m;
      share.emplace_back(m, u);
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
