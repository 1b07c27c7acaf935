#include "quant/quantize.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <map>

#include "core/interrupt.h"
#include "core/malloc_tuning.h"
#include "core/progress.h"
#include "exec/evaluate.h"
#include "exec/executor.h"
#include "quant/channel_bits.h"
#include "quant/embed_quant.h"
#include "quant/observer.h"
#include "quant/quantizer.h"
#include "quant/sparq_apply.h"

namespace mixq {

namespace {

// Runs the whole calibration set through `ex` once (hooks do the observing).
void calibration_pass(Executor& ex, const Dataset& calib, int64_t batch, const std::string& label, bool progress) {
  Progress bar(label, progress ? calib.size() : 0, "img");
  for (int64_t b = 0; b < calib.size(); b += batch) {
    throw_if_interrupted();  // a safe point: calibration statistics are not kept anywhere
    int64_t e = std::min(calib.size(), b + batch);
    ex.run(calib.get(b, e).inputs);
    bar.advance(e - b);
  }
}

// Every planned layer's weight quantized (codes and parameters); activations are calibrated after.
std::vector<QuantizedWeight> quantize_weights(const Graph& prepared, const QuantPlan& plan, uint64_t seed) {
  MappedTensorScope mapped;  // the codes are long-lived (core/malloc_tuning.h)
  std::vector<QuantizedWeight> out;
  auto keep = [&out](QuantizedWeight&& qw) {  // its codes compact at once: one float copy at a time
    compact_codes(qw);
    out.push_back(std::move(qw));
  };
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (const auto& L : plan.layers) {
    auto it = prepared.initializers.find(L.weight);
    MIXQ_CHECK(it != prepared.initializers.end(), ErrorKind::kInvalidArgument, "plan layer '", L.name,
               "' names weight '", L.weight, "' which the model does not have");
    at::Tensor w = it->second.to(at::kFloat);
    MIXQ_CHECK(at::isfinite(w).all().item<bool>(), ErrorKind::kInvalidModel, prepared.source_path,
               ": weight '", L.weight, "' of layer '", L.name, "' contains NaN or infinite values; ",
               "fix the model before quantizing");
    if (L.embed != EmbedScheme::kNone) {  // a row-wise table: its scheme chooses its own ranges
      QuantizedWeight qw;
      qw.node = L.name;
      qw.weight = L.weight;
      quantize_table(w, L.embed, L.weight_scheme.bits, qw, "layer '" + L.name + "'");
      keep(std::move(qw));
      continue;
    }
    RangeOptions ro;
    ro.method = L.weight_range == RangeMethod::kKl ? RangeMethod::kMinMax : L.weight_range;
    QuantizedWeight qw;
    qw.node = L.name;
    qw.weight = L.weight;
    qw.scheme = L.weight_scheme;
    at::Tensor noise;
    if (!L.channel_bits.empty()) {  // kernel-wise: each channel on its own grid
      qw.channel_bits = L.channel_bits;
      qw.params = channel_bits_params(w, qw.scheme, qw.channel_bits, ro);
      if (qw.scheme.rounding == Rounding::kStochastic) noise = at::rand(w.sizes(), gen);
      qw.codes = channel_bits_quantize(w, qw.params, qw.scheme, qw.channel_bits, noise);
      keep(std::move(qw));
      continue;
    }
    qw.params = weight_params(w, qw.scheme, ro);
    if (qw.scheme.rounding == Rounding::kStochastic) noise = at::rand(w.sizes(), gen);
    qw.codes = quantize(w, qw.params, qw.scheme, noise);
    keep(std::move(qw));
  }
  return out;
}

}  // namespace

Graph with_dequantized_weights(const QuantizedModel& qm) {
  MappedTensorScope mapped;  // a whole model's tensors, freed together (core/malloc_tuning.h)
  Graph g = qm.graph;
  for (const auto& w : qm.weights) g.initializers[w.weight] = dequantize_weight(w);
  return g;
}

QuantizedModel quantize_model(const Graph& prepared, const QuantPlan& plan, const Dataset& calib,
                              const QuantizeOptions& opts) {
  MIXQ_CHECK(calib.size() > 0, ErrorKind::kInvalidData, "calibration set ", calib.describe(),
             " is empty; pass --calib with at least one sample (e.g. fmnist:train:1024)");
  validate_plan(plan, "plan");
  QuantizedModel qm;
  qm.graph = prepared;
  qm.weights = quantize_weights(prepared, plan, opts.seed);
  calibrate_activations(qm, plan, calib, opts);
  return qm;
}

std::map<std::string, ActivationObserver> observe_activations(const QuantizedModel& qm, const QuantPlan& plan,
                                                              const Dataset& calib, const QuantizeOptions& opts,
                                                              bool histogram) {
  // One observer per distinct activation tensor (layers reading the same tensor share it).
  std::map<std::string, ActivationObserver> observers;
  bool need_hist = histogram;
  for (const auto& L : plan.layers) {
    if (!L.quantize_input || observers.count(L.input)) continue;
    RangeOptions ro;
    ro.method = L.input_range;
    auto it = observers.emplace(L.input, ActivationObserver(ro.bins)).first;
    need_hist = need_hist || it->second.needs_histogram(ro);
  }
  if (observers.empty()) return observers;
  Executor ex(with_dequantized_weights(qm));
  const int64_t batch = opts.batch_size > 0 ? opts.batch_size : auto_batch_size(ex, calib, kCalibMaxBatch);
  for (auto& [t, obs] : observers) {
    ActivationObserver* o = &obs;
    ex.add_hook(t, [o](const std::string&, at::Tensor& x) { o->observe_range(x); });
  }
  calibration_pass(ex, calib, batch, "calibrate", opts.progress);
  if (need_hist) {
    ex.clear_hooks();
    for (auto& [t, obs] : observers) {
      ActivationObserver* o = &obs;
      ex.add_hook(t, [o](const std::string&, at::Tensor& x) { o->observe_histogram(x); });
    }
    calibration_pass(ex, calib, batch, "histogram", opts.progress);
  }
  return observers;
}

void calibrate_activations(QuantizedModel& qm, const QuantPlan& plan, const Dataset& calib,
                           const QuantizeOptions& opts) {
  qm.activations.clear();
  std::map<std::string, ActivationObserver> observers = observe_activations(qm, plan, calib, opts, false);
  // The first layer reading a tensor names its scheme (in tensor-name order, as before).
  std::map<std::string, const LayerPlan*> tensors;
  for (const auto& L : plan.layers)
    if (L.quantize_input) tensors.emplace(L.input, &L);
  for (const auto& [t, L] : tensors) {
    RangeOptions ro;
    ro.method = L->input_range;
    QuantizedActivation qa;
    qa.tensor = t;
    qa.scheme = L->input_scheme;
    qa.scheme.granularity = Granularity::kPerTensor;
    qa.params = observers.at(t).params(qa.scheme, ro);
    qa.sparq = L->input_sparq;
    qa.all_readers = plan.act_placement == ActPlacement::kOutputs;
    if (qa.sparq.enabled) {
      // One pairing for the tensor: every reader must reduce over the same axis.
      qa.sparq_axis = sparq_pair_axis(qm.graph, L->name);
      for (const auto& o : plan.layers)
        if (o.quantize_input && o.input == t)
          MIXQ_CHECK(sparq_pair_axis(qm.graph, o.name) == qa.sparq_axis, ErrorKind::kUnsupported, "layers '",
                     L->name, "' and '", o.name, "' read '", t, "' with different reduction axes, so vSPARQ has no ",
                     "single pairing for it; give that tensor act_scheme uniform in the plan");
    }
    qm.activations.push_back(std::move(qa));
  }
}

}  // namespace mixq
