// MixQuant (seed 000: Kloberdanz & Le, "MixQuant: Mixed Precision Quantization with a Bit-width
// Optimization Search"): data-free per-layer weight bit-widths from roundoff error.
//   1. e_ref = MSE(W, DQ(Q_ref(W))) with the layer's weight scheme and min-max ranges
//      (ref = 8 bits by default).
//   2. For b = 2..8 ascending, e_b = MSE(W, DQ(Q_b(W))); take the first b with e_b <= QEM * e_ref.
//   3. The bits feed any quantization method unchanged.
// QEM >= 1 trades size for accuracy. The exact threshold rule is our reading of the paper
// (METHODS.md marks it unverified); the reference bit-width is a knob (--qem-ref-bits).
// With a target average (--budget-bits B) the QEM is found by bisection on log(QEM): the smallest
// QEM whose plan averages <= B bits, i.e. the most accurate plan within the budget.
// Defaults: QEM 4 when neither --qem nor --budget-bits is given. First/last layers stay pinned.
#include <ATen/ATen.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "core/log.h"
#include "mixq/error.h"
#include "quant/quantizer.h"
#include "search/allocator.h"
#include "search/hw_spec.h"
#include "search/probe.h"

namespace mixq {

namespace {

// Roundoff errors per layer (index) and bits 2..16, computed once.
struct ErrorTable {
  std::vector<std::array<double, 17>> e;
  bool model_ref = false;  // threshold from the params-weighted mean e_ref over unpinned layers
  double mean_ref = 0;
};

ErrorTable error_table(const Graph& g, const QuantPlan& plan, int ref_bits, const std::string& ref) {
  MIXQ_CHECK(ref == "layer" || ref == "model", ErrorKind::kInvalidArgument, "--qem-ref must be 'layer' or 'model' (got '",
             ref, "')");
  ErrorTable t;
  t.model_ref = ref == "model";
  t.e.resize(plan.layers.size());
  for (size_t i = 0; i < plan.layers.size(); ++i) {
    const LayerPlan& L = plan.layers[i];
    if (L.pinned) continue;
    const at::Tensor& w = g.initializers.at(L.weight);
    QScheme s = L.weight_scheme;
    s.rounding = Rounding::kNearest;
    for (int b = 2; b <= 8; ++b) {
      s.bits = b;
      // A row-wise table is measured under its own scheme (its error, not the affine grid's).
      t.e[i][b] = L.embed == EmbedScheme::kNone
                      ? roundtrip_mse(w, s)
                      : (requantized_weight(w.to(at::kFloat), L, b) - w.to(at::kFloat)).pow(2).mean().item<double>();
    }
    if (ref_bits > 8) {
      s.bits = ref_bits;
      t.e[i][ref_bits] = roundtrip_mse(w, s);
    }
  }
  double num = 0, den = 0;
  for (size_t i = 0; i < plan.layers.size(); ++i)
    if (!plan.layers[i].pinned) {
      num += double(plan.layers[i].params) * t.e[i][ref_bits];
      den += double(plan.layers[i].params);
    }
  t.mean_ref = den > 0 ? num / den : 0;
  return t;
}

std::vector<int> choose(const QuantPlan& plan, const ErrorTable& t, double qem, int ref_bits) {
  std::vector<int> bits(plan.layers.size());
  for (size_t i = 0; i < plan.layers.size(); ++i) {
    const LayerPlan& L = plan.layers[i];
    if (L.pinned) {
      bits[i] = L.weight_scheme.bits;
      continue;
    }
    const double threshold = qem * (t.model_ref ? t.mean_ref : t.e[i][ref_bits]);
    int chosen = 8;
    for (int b = 2; b <= 8; ++b)
      if (t.e[i][b] <= threshold) {
        chosen = b;
        break;
      }
    bits[i] = chosen;
  }
  return bits;
}

double avg_bits(const QuantPlan& plan, const std::vector<int>& bits) {
  double num = 0, den = 0;
  for (size_t i = 0; i < bits.size(); ++i) {
    num += double(plan.layers[i].params) * bits[i];
    den += double(plan.layers[i].params);
  }
  return den > 0 ? num / den : 0;
}

}  // namespace

std::vector<int> mixquant_bits(const Graph& g, const QuantPlan& plan, double qem, int ref_bits, const std::string& ref) {
  MIXQ_CHECK(qem >= 1, ErrorKind::kInvalidArgument, "--qem must be >= 1 (got ", qem, ")");
  MIXQ_CHECK((ref_bits >= 2 && ref_bits <= 8) || ref_bits == 16, ErrorKind::kInvalidArgument,
             "--qem-ref-bits must be 2-8 or 16");
  return choose(plan, error_table(g, plan, ref_bits, ref), qem, ref_bits);
}

void allocate_mixquant(AllocContext& ctx) {
  const Graph& g = ctx.prepared;
  QuantPlan& plan = ctx.plan;
  const SearchOptions& opts = ctx.opts;
  const int ref = opts.qem_ref_bits;
  MIXQ_CHECK((ref >= 2 && ref <= 8) || ref == 16, ErrorKind::kInvalidArgument, "--qem-ref-bits must be 2-8 or 16");
  ErrorTable t = error_table(g, plan, ref, opts.qem_ref);
  double qem = opts.qem > 0 ? opts.qem : 4.0;
  nlohmann::json infeasible;
  if (opts.budget_avg_wbits > 0 && opts.qem <= 0) {
    // avg bits is non-increasing in QEM: bisection on log(QEM) for the smallest feasible QEM.
    double lo = 0, hi = std::log(1e15);
    std::vector<int> at_hi = choose(plan, t, std::exp(hi), ref);
    const double min_avg = avg_bits(plan, at_hi);
    if (min_avg > opts.budget_avg_wbits + 1e-9) {
      // Not a failure: the closest plan (every unpinned layer at 2 bits), what the minimum is and
      // which layers hold it up.
      nlohmann::json binding = nlohmann::json::array();
      for (const auto& L : plan.layers)
        if (L.pinned) binding.push_back({{"layer", L.name}, {"why", "pinned at " + std::to_string(L.weight_scheme.bits) + " bits (--pin-bits)"}});
      infeasible = nlohmann::json::array({{{"budget", "avg_wbits"}, {"requested", opts.budget_avg_wbits},
                                           {"minimum_feasible", min_avg}, {"binding_layers", binding}}});
      log::warn("mixquant: an average of " + std::to_string(opts.budget_avg_wbits) +
                " weight bits is not reachable; the minimum is " + std::to_string(min_avg) +
                " (pinned first/last layers; --pin-bits 0 unpins them). Using the closest plan.");
    } else {
      if (avg_bits(plan, choose(plan, t, 1.0, ref)) <= opts.budget_avg_wbits) hi = 0;
      for (int it = 0; it < 60; ++it) {
        double mid = 0.5 * (lo + hi);
        if (avg_bits(plan, choose(plan, t, std::exp(mid), ref)) <= opts.budget_avg_wbits) hi = mid; else lo = mid;
      }
    }
    qem = std::exp(hi);
  } else {
    MIXQ_CHECK(qem >= 1, ErrorKind::kInvalidArgument, "--qem must be >= 1 (got ", qem, ")");
  }
  std::vector<int> bits = choose(plan, t, qem, ref);
  for (size_t i = 0; i < bits.size(); ++i) {
    // Under a hardware spec: the nearest allowed bit-width at or above MixQuant's choice (never
    // less accurate than the paper's rule asks), else the highest allowed.
    if (ctx.hw && !plan.layers[i].pinned) {
      const auto allowed = allowed_wbits(*ctx.hw, plan.layers[i]);
      auto it = std::lower_bound(allowed.begin(), allowed.end(), bits[i]);
      bits[i] = it != allowed.end() ? *it : allowed.back();
    }
    plan.layers[i].weight_scheme.bits = bits[i];
  }
  plan.search = "mixquant";
  plan.search_params = {{"qem", qem}, {"qem_ref_bits", ref}, {"qem_ref", opts.qem_ref}};
  if (!infeasible.is_null()) plan.search_params["infeasible"] = infeasible;
  if (opts.budget_avg_wbits > 0) plan.budget = {{"avg_wbits", opts.budget_avg_wbits}};
  update_cost(plan);
}

}  // namespace mixq
