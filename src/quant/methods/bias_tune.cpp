// Bias tuning (seed 003): with every weight and activation quantizer fixed, train only the
// biases of the quantized layers so the quantized model's logits match the float model's:
// loss = KL(softmax(float) || softmax(quant)), batch mean. Adam (lr 1e-3), 1,000 iterations,
// batch 50 (the AdaQuant loop's defaults; scaled by --iters). Gradients pass the activation
// quantizers straight through.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/optim/adam.h>

#include "core/interrupt.h"
#include "core/progress.h"
#include "quant/methods/method.h"
#include "quant/methods/recon_loop.h"
#include "quant/methods/recon_model.h"

namespace mixq {

void bias_tune(MethodContext& ctx) {
  install_interrupt_handler();
  const ReconOptions& o = ctx.opts;
  QuantizedModel& qm = ctx.qm;
  ReconModel rm(qm);
  for (ActQuant* a : rm.acts()) a->enabled = true;
  std::vector<std::string> layers;
  std::vector<at::Tensor> base, deltas;
  for (const auto& w : qm.weights) {
    const std::string& b = rm.bias_name(w.node);
    if (b.empty()) continue;
    layers.push_back(w.node);
    base.push_back(qm.graph.initializers.at(b).to(at::kFloat));
    deltas.push_back(at::zeros_like(base.back()).set_requires_grad(true));
  }
  if (layers.empty()) {
    ctx.report["bias_tune"] = {{"skipped", "no quantized layer has a bias"}};
    return;
  }
  CacheBudget budget = cache_budget(o);
  std::vector<std::string> in_names;
  for (const auto& vi : qm.graph.inputs) in_names.push_back(vi.name);
  std::vector<std::string> out_names;
  for (const auto& vi : qm.graph.outputs) out_names.push_back(vi.name);
  auto inputs = rm.collect(rm.fp(), ctx.calib, in_names, &budget, o.calib_batch, "cache inputs", o.progress);
  auto target = rm.collect(rm.fp(), ctx.calib, {out_names[0]}, &budget, o.calib_batch, "cache logits", o.progress);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  torch::optim::Adam opt(deltas, torch::optim::AdamOptions(o.bias_lr));
  auto kl = [](const at::Tensor& q_logits, const at::Tensor& f_logits) {
    at::Tensor lf = at::log_softmax(f_logits.reshape({f_logits.size(0), -1}), 1);
    at::Tensor lq = at::log_softmax(q_logits.reshape({q_logits.size(0), -1}), 1);
    return (lf.exp() * (lf - lq)).sum(1).mean();
  };
  auto batch_loss = [&](const at::Tensor& idx) {
    std::map<std::string, at::Tensor> feeds;
    for (size_t i = 0; i < in_names.size(); ++i) feeds[in_names[i]] = inputs[i].gather(idx);
    for (size_t k = 0; k < layers.size(); ++k) rm.set_bias(layers[k], base[k] + deltas[k]);
    auto out = rm.quant().run(feeds, {out_names[0]});
    return kl(out.at(out_names[0]), target[0].gather(idx));
  };
  auto eval_loss = [&]() {
    at::NoGradGuard ng;
    const int64_t n = std::min<int64_t>(inputs[0].rows(), 1024);
    return batch_loss(at::arange(0, n, at::kLong)).item<double>();
  };
  ctx.report["bias_tune"] = {{"kl_before", eval_loss()}};
  rm.quant().set_grad_enabled(true);
  const int64_t n = inputs[0].rows(), batch = std::min(o.bias_batch, n);
  Progress bar("bias tuning", o.progress ? o.bias_iters : 0, "it");
  int64_t it = 0;
  for (; it < o.bias_iters && !interrupted(); ++it) {
    at::Tensor loss = batch_loss(at::randperm(n, gen, at::kLong).slice(0, 0, batch));
    opt.zero_grad();
    loss.backward();
    opt.step();
    if (it % 50 == 0) show_loss(bar, "kl", loss);
    bar.advance();
  }
  bar.finish();
  rm.quant().set_grad_enabled(false);
  for (size_t k = 0; k < layers.size(); ++k) {
    at::Tensor& b = qm.graph.initializers.at(rm.bias_name(layers[k]));
    b = (base[k] + deltas[k].detach()).to(b.scalar_type());
    rm.set_bias(layers[k], b);
  }
  ctx.report["bias_tune"]["kl_after"] = eval_loss();
  ctx.report["bias_tune"]["iters"] = it;
  ctx.report["bias_tune"]["layers"] = layers.size();
  if (it < o.bias_iters) ctx.interrupted = true;
}

}  // namespace mixq
