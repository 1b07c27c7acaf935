// FracBits step 5: the global offset by bisection, the budget left filled bit by bit, integer bits
// frozen into the plan (layer-wise: weight_scheme.bits; kernel-wise: channel_bits).
#include <algorithm>
#include <cmath>

#include "core/log.h"
#include "search/fracbits_parts.h"

namespace mixq {

namespace {

// The plan with every learned bit-width rounded at offset d.
QuantPlan rounded_plan(const QuantPlan& plan, const FracTargets& t, const std::vector<std::vector<double>>& lw,
                       const std::vector<double>& la, double d) {
  QuantPlan p = plan;
  for (size_t k = 0; k < t.layers.size(); ++k) {
    LayerPlan& L = p.layers[t.layers[k]];
    std::vector<int> bits(lw[k].size());
    for (size_t c = 0; c < bits.size(); ++c) bits[c] = fracbits_round(lw[k][c], d);
    if (t.per_channel()) set_channel_bits(L, bits);
    else L.weight_scheme.bits = bits[0];
  }
  for (size_t k = 0; k < t.acts.size(); ++k)
    for (int i : t.acts[k].readers) {
      p.layers[i].input_scheme.bits = fracbits_round(la[k], d);
      if (p.layers[i].input_scheme.bits != 8) p.layers[i].input_sparq = SparqScheme{};
    }
  unify_shared_inputs(p);
  update_cost(p);
  return p;
}

// One more bit for weight lambda (k, c) or activation table k; false if already at the top.
bool raise_bit(QuantPlan& p, const FracTargets& t, bool act, size_t k, size_t c) {
  bool raised = false;
  if (act) {
    for (int i : t.acts[k].readers)
      if (p.layers[i].input_scheme.bits < kFracBitsMax) ++p.layers[i].input_scheme.bits, raised = true;
    if (raised) unify_shared_inputs(p);
    return raised;
  }
  std::vector<int> bits = fracbits_frozen_bits(p, t, k);
  if (bits[c] >= kFracBitsMax) return false;
  ++bits[c];
  LayerPlan& L = p.layers[t.layers[k]];
  if (t.per_channel()) set_channel_bits(L, bits);
  else L.weight_scheme.bits = bits[0];
  return true;
}

}  // namespace

std::vector<int> fracbits_frozen_bits(const QuantPlan& plan, const FracTargets& t, size_t k) {
  const LayerPlan& L = plan.layers[t.layers[k]];
  if (!L.channel_bits.empty()) return L.channel_bits;
  return std::vector<int>(t.per_channel() ? size_t(t.channels[k]) : 1, L.weight_scheme.bits);
}

FracFreeze fracbits_freeze(QuantPlan& plan, const FracTargets& t, const Budget& b,
                           const std::vector<std::vector<double>>& lw, const std::vector<double>& la, int tries) {
  FracFreeze r;
  r.off = fracbits_offset(
      [&](double d) { return fracbits_budget_ratio(b, rounded_plan(plan, t, lw, la, d).cost); },
      -double(kFracBitsMax), double(kFracBitsMax), tries);
  if (!r.off.feasible)
    log::warn("fracbits: the budget cannot be met even with every learned layer at 2 bits (cost / budget " +
              std::to_string(r.off.ratio) + "); the closest plan is used");
  plan = rounded_plan(plan, t, lw, la, r.off.offset);
  if (!r.off.feasible) return r;
  // One global offset moves every bit-width together: on a model of a dozen layers the next step
  // up can overshoot the budget by several percent. The budget left is spent one bit at a time on
  // the learned bit-widths that were closest to rounding up (largest lambda + d - round), while
  // every budget still holds. Kernel-wise, a slot is one channel: its bit costs params / C.
  struct Slot {
    bool act;
    size_t k, c;
    double residual;
  };
  auto residual = [&](double l) { return l + r.off.offset - std::round(l + r.off.offset); };
  std::vector<Slot> slots;
  for (size_t k = 0; k < lw.size(); ++k)
    for (size_t c = 0; c < lw[k].size(); ++c) slots.push_back({false, k, c, residual(lw[k][c])});
  for (size_t k = 0; k < la.size(); ++k) slots.push_back({true, k, 0, residual(la[k])});
  std::stable_sort(slots.begin(), slots.end(), [](const Slot& x, const Slot& y) { return x.residual > y.residual; });
  for (const Slot& s : slots) {
    QuantPlan p = plan;
    if (!raise_bit(p, t, s.act, s.k, s.c)) continue;
    update_cost(p);
    if (fracbits_budget_ratio(b, p.cost) <= 1) plan = std::move(p), ++r.filled;
  }
  return r;
}

}  // namespace mixq
