#include "search/curvature.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>

#include "core/log.h"
#include "exec/executor.h"

namespace mixq {

namespace {

// Float executor in grad mode whose weights are fresh leaves requiring grad.
struct GradModel {
  Executor ex;
  std::vector<at::Tensor> leaves;
  GradModel(const Graph& g, const std::vector<std::string>& weights) : ex(g) {
    ex.set_grad_enabled(true);
    for (const auto& w : weights) {
      at::Tensor leaf = g.initializers.at(w).to(at::kFloat).detach().clone().requires_grad_(true);
      leaves.push_back(leaf);
      const auto dtype = g.initializers.at(w).scalar_type();
      ex.add_hook(w, [leaf, dtype](const std::string&, at::Tensor& v) { v = leaf.to(dtype); });
    }
  }
  at::Tensor loss(const std::vector<at::Tensor>& inputs, const at::Tensor& labels) {
    at::Tensor z = ex.run(inputs)[0].to(at::kFloat);
    return at::cross_entropy_loss(z, labels);
  }
};

}  // namespace

Curvature measure_curvature(const Graph& prepared, const std::vector<std::string>& weights,
                            const std::vector<Batch>& batches, int hutchinson_samples, int64_t micro_batch) {
  Curvature c;
  GradModel m(prepared, weights);
  std::vector<at::Tensor> F;
  for (const auto& l : m.leaves) F.push_back(at::zeros_like(l));
  int64_t n = 0;
  for (const auto& b : batches) {
    const int64_t N = b.labels.size(0);
    for (int64_t s = 0; s < N; s += micro_batch) {
      const int64_t e = std::min(N, s + micro_batch);
      std::vector<at::Tensor> in;
      for (const auto& x : b.inputs) in.push_back(x.slice(0, s, e));
      at::Tensor loss = m.loss(in, b.labels.slice(0, s, e));
      auto g = torch::autograd::grad({loss}, m.leaves);
      for (size_t i = 0; i < g.size(); ++i) F[i] += g[i].detach().pow(2) * double(e - s);
      n += e - s;
    }
  }
  for (size_t i = 0; i < weights.size(); ++i) c.fisher[weights[i]] = F[i] / double(std::max<int64_t>(n, 1));

  try {
    // The Hessian-vector products run on the first 64 samples: double backward through
    // convolutions takes libtorch's slow path, and a trace estimate needs few samples.
    const Batch& b0 = batches.front();
    const int64_t nh = std::min<int64_t>(64, b0.labels.size(0));
    std::vector<at::Tensor> hin;
    for (const auto& x : b0.inputs) hin.push_back(x.slice(0, 0, nh));
    at::Tensor loss = m.loss(hin, b0.labels.slice(0, 0, nh));
    auto g = torch::autograd::grad({loss}, m.leaves, {}, /*retain_graph=*/true, /*create_graph=*/true);
    std::vector<double> tr(weights.size(), 0);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
    for (int k = 0; k < hutchinson_samples; ++k) {
      std::vector<at::Tensor> v;
      at::Tensor gv = at::zeros({}, at::kFloat);
      for (size_t i = 0; i < g.size(); ++i) {
        v.push_back(at::randint(0, 2, m.leaves[i].sizes(), gen, at::kFloat) * 2 - 1);
        gv = gv + (g[i] * v[i]).sum();
      }
      auto hv = torch::autograd::grad({gv}, m.leaves, {}, /*retain_graph=*/true, /*create_graph=*/false,
                                      /*allow_unused=*/true);
      for (size_t i = 0; i < hv.size(); ++i)
        if (hv[i].defined()) tr[i] += (hv[i] * v[i]).sum().item<double>();
    }
    for (size_t i = 0; i < weights.size(); ++i) c.trace[weights[i]] = tr[i] / hutchinson_samples;
    c.has_trace = true;
  } catch (const std::exception& e) {
    log::warn(std::string("Hessian trace unavailable (an op of this model has no double backward): ") + e.what());
  }
  return c;
}

}  // namespace mixq
