#include "quant/methods/recon_loop.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <cctype>
#include <cstdlib>

#include "core/progress.h"
#include "quant/methods/fused_quant.h"

namespace mixq {

CacheBudget cache_budget(const ReconOptions& o) {
  CacheBudget b;
  b.limit_bytes = o.cache_mb << 20;
  b.spill_dir = o.cache_dir;
  return b;
}

ConvPrecision loop_precision(const ReconOptions& o) {
  if (o.precision == "fp32") return ConvPrecision::kFloat32;
  if (o.precision == "auto") return cpu_has_amx_bf16() ? ConvPrecision::kBFloat16 : ConvPrecision::kFloat32;
  MIXQ_CHECK(o.precision == "bf16", ErrorKind::kInvalidArgument, "--recon-precision must be auto, fp32 or bf16 (got '",
             o.precision, "')");
  MIXQ_CHECK(cpu_has_native_bf16(), ErrorKind::kInvalidArgument,
             "--recon-precision bf16 needs a CPU with AVX-512 BF16 or AMX-BF16 (this one has neither, so bf16 "
             "convolutions would be emulated and slower); use --recon-precision fp32");
  return ConvPrecision::kBFloat16;
}

std::set<std::string> pinned_layers(const QuantPlan& plan) {
  std::set<std::string> s;
  for (const auto& L : plan.layers)
    if (L.pinned) s.insert(L.name);
  return s;
}

std::vector<LayerInfo> quantized_layers(const MethodContext& ctx) {
  std::set<std::string> q;
  for (const auto& w : ctx.qm.weights) q.insert(w.node);
  std::vector<LayerInfo> out;
  for (const auto& L : find_layers(ctx.prepared))
    if (q.count(L.node)) out.push_back(L);
  return out;
}

void show_loss(Progress& bar, const char* name, const at::Tensor& loss) {
  char pf[64];
  std::snprintf(pf, sizeof pf, "%s %.4g", name, loss.item<double>());
  bar.set_postfix(pf);
}

std::shared_ptr<void> op_profile(const std::string& phase, const std::string& unit) {
  const char* dir = std::getenv("MIXQ_OP_PROFILE");
  if (!dir || !*dir) return nullptr;
  std::string name = phase + "-" + unit;
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') c = '_';
  return std::make_shared<torch::autograd::profiler::RecordProfile>(std::string(dir) + "/" + name + ".trace.json");
}

void finish_unit_report(nlohmann::json& ju, int64_t iters, const LoopTimer& timer, LoopTimer::clock::time_point start) {
  ju["iters"] = iters;
  ju["timing"] = timer.to_json(iters);
  ju["seconds"] = std::chrono::duration<double>(LoopTimer::clock::now() - start).count();
}

UnitCache cache_unit(ReconModel& rm, const Unit& u, const MethodContext& ctx, CacheBudget& budget, bool fisher,
                     bool float_inputs) {
  const ReconOptions& o = ctx.opts;
  UnitCache c;
  c.in = rm.collect(float_inputs ? rm.fp() : rm.quant(), ctx.calib, u.inputs, &budget, o.calib_batch, "cache inputs", o.progress);
  c.out = rm.collect(rm.fp(), ctx.calib, u.outputs, &budget, o.calib_batch, "cache targets", o.progress);
  if (!fisher) return c;

  Executor& fp = rm.fp();
  fp.set_grad_enabled(true);
  std::map<std::string, at::Tensor> leaves;
  for (const auto& name : u.outputs)
    fp.add_hook(name, [&leaves](const std::string& n, at::Tensor& t) {
      t = t.detach().requires_grad_(true);
      leaves[n] = t;
    });
  for (size_t i = 0; i < u.outputs.size(); ++i) c.fisher.emplace_back(&budget);
  double sum = 0;
  int64_t count = 0;
  Progress bar("fisher", o.progress ? ctx.calib.size() : 0, "img");
  for (int64_t b = 0; b < ctx.calib.size(); b += o.calib_batch) {
    int64_t e = std::min(ctx.calib.size(), b + o.calib_batch);
    Batch batch = ctx.calib.get(b, e);
    leaves.clear();
    at::Tensor logits = fp.run(batch.inputs).at(0).reshape({e - b, -1});
    at::Tensor labels = batch.labels.defined() ? batch.labels : logits.detach().argmax(1);
    // Summed (not averaged) so every sample's gradient is its own loss's gradient.
    at::Tensor loss = at::cross_entropy_loss(logits, labels, {}, at::Reduction::Sum);
    loss.backward();
    for (size_t i = 0; i < u.outputs.size(); ++i) {
      const at::Tensor& leaf = leaves.at(u.outputs[i]);
      at::Tensor g2 = leaf.grad().defined() ? leaf.grad().detach().pow(2) : at::zeros_like(leaf).detach();
      sum += g2.sum().item<double>();
      count += g2.numel();
      c.fisher[i].append(g2);
    }
    bar.advance(e - b);
  }
  fp.clear_hooks();
  fp.set_grad_enabled(false);
  for (auto& s : c.fisher) s.finish();
  c.fisher_scale = sum > 0 ? static_cast<double>(count) / sum : 1.0;
  return c;
}

std::map<std::string, at::Tensor> unit_outputs(ReconModel& rm, const Unit& u, const UnitCache& c, const at::Tensor& idx) {
  std::map<std::string, at::Tensor> feeds;
  for (size_t i = 0; i < u.inputs.size(); ++i) feeds[u.inputs[i]] = c.in[i].gather(idx);
  return rm.quant().run(feeds, u.outputs);
}

at::Tensor unit_loss(ReconModel& rm, const Unit& u, const UnitCache& c, const at::Tensor& idx, double p) {
  auto out = unit_outputs(rm, u, c, idx);
  at::Tensor loss;
  for (size_t i = 0; i < u.outputs.size(); ++i) {
    at::Tensor w;
    if (!c.fisher.empty()) w = c.fisher[i].gather(idx) * c.fisher_scale;
    at::Tensor l = reconstruction_loss_fused(out.at(u.outputs[i]), c.out[i].gather(idx), w, p);
    loss = loss.defined() ? loss + l : l;
  }
  return loss;
}

double unit_loss_eval(ReconModel& rm, const Unit& u, const UnitCache& c, int64_t max_rows) {
  const bool grad = rm.quant().grad_enabled();
  rm.quant().set_grad_enabled(false);
  const int64_t n = std::min(c.rows(), max_rows);
  double total = 0;
  for (int64_t b = 0; b < n; b += 256) {
    int64_t e = std::min(n, b + 256);
    at::Tensor idx = at::arange(b, e, at::kLong);
    total += unit_loss(rm, u, c, idx).item<double>() * static_cast<double>(e - b);
  }
  rm.quant().set_grad_enabled(grad);
  return n > 0 ? total / static_cast<double>(n) : 0.0;
}

nlohmann::json LoopTimer::to_json(int64_t iters) const {
  const double total = forward + backward + step + other;
  const double per = iters > 0 ? 1000.0 / static_cast<double>(iters) : 0.0;
  return {{"seconds", total},
          {"seconds_per_1000_iters", total * per},
          {"forward_s", forward},
          {"backward_s", backward},
          {"optimizer_s", step},
          {"other_s", other}};
}

}  // namespace mixq
