// FracBits steps 1 and 3: what is learned, and the differentiable cost of the lambdas.
#include <ATen/ATen.h>

#include <algorithm>
#include <map>

#include "mixq/error.h"
#include "search/fracbits_parts.h"

namespace mixq {

FracTargets fracbits_targets(const QuantPlan& plan, bool learn_acts, bool per_channel) {
  FracTargets t;
  for (size_t i = 0; i < plan.layers.size(); ++i) {
    const LayerPlan& L = plan.layers[i];
    if (L.pinned || L.embed != EmbedScheme::kNone) continue;
    // Kernel-wise bits give each output channel its own grid: that needs one scale per channel.
    MIXQ_CHECK(!per_channel || L.weight_scheme.granularity == Granularity::kPerChannel, ErrorKind::kInvalidArgument,
               "--fracbits-granularity channel learns one bit-width per output channel and needs per-channel ",
               "weight scales, but layer '", L.name, "' is ", granularity_name(L.weight_scheme.granularity),
               " (use --granularity per_channel)");
    t.layers.push_back(static_cast<int>(i));
    if (per_channel) t.channels.push_back(weight_channels(L));
  }
  t.act_of_layer.assign(plan.layers.size(), -1);
  if (!learn_acts) return t;
  std::map<std::string, std::vector<int>> readers;
  std::map<std::string, bool> ok;
  for (size_t i = 0; i < plan.layers.size(); ++i) {
    const LayerPlan& L = plan.layers[i];
    if (!L.quantize_input) continue;
    readers[L.input].push_back(static_cast<int>(i));
    auto [it, fresh] = ok.emplace(L.input, true);
    it->second = it->second && !L.pinned && L.embed == EmbedScheme::kNone && !L.input_sparq.enabled;
  }
  for (auto& [name, r] : readers) {
    if (!ok[name]) continue;
    FracActTable a;
    a.tensor = name;
    a.readers = r;
    for (int i : r) t.act_of_layer[i] = static_cast<int>(t.acts.size());
    t.acts.push_back(std::move(a));
  }
  return t;
}

double fracbits_budget_ratio(const Budget& b, const PlanCost& c) {
  double r = 0;
  if (b.avg_wbits > 0) r = std::max(r, c.avg_wbits / b.avg_wbits);
  if (b.bytes > 0) r = std::max(r, static_cast<double>(c.size_bytes) / static_cast<double>(b.bytes));
  if (b.bops > 0) r = std::max(r, c.bops / b.bops);
  return r;
}

FracCost::FracCost(const QuantPlan& plan, const FracTargets& t, const Budget& b) : plan_(plan), t_(t), b_(b) {
  std::vector<char> learned(plan.layers.size(), 0);
  for (int i : t.layers) learned[i] = 1;
  for (size_t i = 0; i < plan.layers.size(); ++i) {
    const LayerPlan& L = plan.layers[i];
    params_.push_back(static_cast<double>(L.params));
    macs_.push_back(static_cast<double>(L.macs));
    total_params_ += params_[i];
    if (!learned[i]) fixed_bits_ += params_[i] * mean_weight_bits(L), fixed_bops_ += layer_bops(L);
    else learned_bits0_ += params_[i] * mean_weight_bits(L);
  }
  bytes0_ = static_cast<double>(plan.cost.size_bytes);
}

double FracCost::abits_fixed(int i) const {
  const LayerPlan& L = plan_.layers[i];
  return L.quantize_input ? double(L.input_scheme.bits) : 32.0;
}

at::Tensor FracCost::term(const std::vector<at::Tensor>& lw, const std::vector<at::Tensor>& la) const {
  at::Tensor wbits = at::zeros({}, at::kDouble), bops = at::zeros({}, at::kDouble);
  for (size_t k = 0; k < t_.layers.size(); ++k) {
    const int i = t_.layers[k];
    const at::Tensor l = lw[k].to(at::kDouble).mean();  // 0-d: the lambda itself
    wbits = wbits + l * params_[i];
    if (b_.bops > 0) {
      const at::Tensor a = t_.act_of_layer[i] >= 0 ? la[t_.act_of_layer[i]].to(at::kDouble)
                                                   : at::scalar_tensor(abits_fixed(i), at::kDouble);
      bops = bops + l * a * macs_[i];
    }
  }
  at::Tensor r = at::zeros({}, at::kDouble);
  if (b_.avg_wbits > 0) r = r + ((wbits + fixed_bits_) / (total_params_ * b_.avg_wbits) - 1).abs();
  if (b_.bytes > 0) r = r + ((bytes0_ + (wbits - learned_bits0_) / 8) / static_cast<double>(b_.bytes) - 1).abs();
  if (b_.bops > 0) r = r + ((bops + fixed_bops_) / b_.bops - 1).abs();
  return r;
}

double FracCost::ratio_uniform(double u) const {
  double wbits = 0, bops = 0, r = 0;
  for (int i : t_.layers) {
    wbits += u * params_[i];
    bops += u * (t_.act_of_layer[i] >= 0 ? u : abits_fixed(i)) * macs_[i];
  }
  if (b_.avg_wbits > 0) r = std::max(r, (wbits + fixed_bits_) / (total_params_ * b_.avg_wbits));
  if (b_.bytes > 0) r = std::max(r, (bytes0_ + (wbits - learned_bits0_) / 8) / double(b_.bytes));
  if (b_.bops > 0) r = std::max(r, (bops + fixed_bops_) / b_.bops);
  return r;
}

double FracCost::uniform_bits() const {
  double lo = kFracBitsMin, hi = kFracBitsMax;
  if (ratio_uniform(hi) <= 1) return hi;
  if (ratio_uniform(lo) > 1) return lo;
  for (int i = 0; i < 40 && hi - lo > 1e-6; ++i) (ratio_uniform(0.5 * (lo + hi)) <= 1 ? lo : hi) = 0.5 * (lo + hi);
  return lo;
}

}  // namespace mixq
