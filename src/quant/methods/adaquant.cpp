// AdaQuant (Hubara et al., ICML 2021; seed 003): per layer, jointly learn a weight delta dW, a
// bias delta db and the ranges (step sizes) of the weight and input quantizers so that
//   || f(Q(W + dW) Q(X) + b + db) - f(W X_fp + b) ||^2   (f: the activation after the layer,
// when the layer feeds only that activation) is minimal on the calibration set.
// Adam with the paper's per-group learning rates: weights 1e-5, bias 1e-3, input range 1e-1,
// weight range 1e-3; 1,000 iterations, batch 50. Quantizers use straight-through rounding.
// Sequential (default): X comes from the model quantized so far (weights and activations).
// Parallel: X comes from the float model, every layer independently, each with its own random
// stream (seeded by the seed and the unit's index), so the units can run in any order: under
// `mpirun -np N` (dist/dist.h) the ranks take units from a shared counter and send what they
// learned to rank 0, and the result is the same for any N up to float summation order.
// Step sizes are clamped positive after each step. Pinned (first/last) layers are not tuned.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/optim/adam.h>

#include <functional>
#include <map>
#include <set>

#include "core/interrupt.h"
#include "core/progress.h"
#include "dist/dist.h"
#include "graph/blocks.h"
#include "quant/methods/method.h"
#include "quant/methods/recon_checkpoint.h"
#include "quant/methods/recon_loop.h"
#include "quant/methods/soft_quant.h"
#include "quant/quantizer.h"

namespace mixq {

namespace {
constexpr int kUnitTag = 102;  // a finished parallel unit on its way to rank 0
}  // namespace

void refine_adaquant(MethodContext& ctx) {
  install_interrupt_handler();
  const ReconOptions& o = ctx.opts;
  const bool parallel = !o.adaquant_sequential;
  const std::set<std::string> pinned = pinned_layers(ctx.plan);
  const std::vector<Unit> units = layer_units(ctx.prepared, quantized_layers(ctx));
  CacheBudget budget = cache_budget(o);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  const nlohmann::json settings = {{"iters", o.adaquant_iters}, {"batch", o.adaquant_batch},
                                   {"sequential", o.adaquant_sequential},
                                   {"lr", {o.adaquant_lr_w, o.adaquant_lr_b, o.adaquant_lr_in, o.adaquant_lr_wrange}},
                                   {"seed", o.seed}, {"calib_batch", o.calib_batch}};
  ReconCheckpoint ck(ctx, "adaquant", settings);
  ck.restore_generator(gen);  // replaying finished units draws nothing from it
  ReconModel rm(ctx.qm);
  // Sequential: the model quantized so far includes activations; enable them as units finish.
  nlohmann::json jr = ck.reports("units");
  int todo = 0, done = 0;
  for (const auto& u : units) todo += pinned.count(u.layers[0]) ? 0 : 1;
  ActQuant* first_act = units.empty() ? nullptr : rm.act_of_layer(units[0].layers[0]);
  if (first_act && o.adaquant_sequential) first_act->enabled = true;

  // What a unit learned, put into the model: from the checkpoint (replay) or from another rank.
  auto apply_saved = [&](size_t ui, const std::function<at::Tensor(const std::string&)>& get) {
    const std::string& l = units[ui].layers[0];
    ActQuant* act = rm.act_of_layer(l);
    QuantizedWeight& qw = rm.weight(l);
    qw.codes = get("codes/" + l).reshape(qw.codes.sizes()).contiguous();
    qw.params.scale = get("scale/" + l).to(qw.params.scale.scalar_type());
    at::Tensor& wi = ctx.qm.graph.initializers[qw.weight];
    wi = get("weight/" + l).to(wi.scalar_type());
    rm.use_quantized_weight(l);
    const std::string& bname = rm.bias_name(l);
    if (!bname.empty()) {
      at::Tensor b = get("bias/" + l);
      at::Tensor& bi = ctx.qm.graph.initializers[bname];
      bi = b.to(bi.scalar_type());
      rm.set_bias(l, b);
    }
    if (act) {
      act->scale = get("act/" + l);
      act->enabled = o.adaquant_sequential;
    }
  };

  // The tensors apply_saved sets, as the model holds them now: what reproduces unit `ui`'s state.
  auto current_state = [&](size_t ui) {
    const std::string& l = units[ui].layers[0];
    QuantizedWeight& qw = rm.weight(l);
    std::map<std::string, at::Tensor> s = {{"codes/" + l, qw.codes},
                                           {"scale/" + l, qw.params.scale},
                                           {"weight/" + l, ctx.qm.graph.initializers.at(qw.weight)}};
    if (!rm.bias_name(l).empty()) s["bias/" + l] = ctx.qm.graph.initializers.at(rm.bias_name(l));
    if (ActQuant* act = rm.act_of_layer(l)) s["act/" + l] = act->scale;
    return s;
  };

  // Learns unit `ui` with random stream `g`, writes the result into the model and returns its
  // report entry and the tensors that reproduce it (apply_saved).
  auto optimise = [&](size_t ui, at::Generator& g) -> std::pair<nlohmann::json, std::map<std::string, at::Tensor>> {
    const Unit& u = units[ui];
    const std::string& l = u.layers[0];
    ActQuant* act = rm.act_of_layer(l);
    nlohmann::json ju = {{"unit", l}};
    auto t0 = LoopTimer::clock::now();
    if (act) act->enabled = false;  // the unit's own input quantizer is part of what is learned
    UnitCache cache;
    if (o.adaquant_sequential) {
      cache = cache_unit(rm, u, ctx, budget, false);
    } else {
      cache.in = rm.collect(rm.fp(), ctx.calib, u.inputs, &budget, o.calib_batch, "cache inputs", o.progress);
      cache.out = rm.collect(rm.fp(), ctx.calib, u.outputs, &budget, o.calib_batch, "cache targets", o.progress);
    }
    if (act) act->enabled = true;
    QuantizedWeight& qw = rm.weight(l);
    const at::Tensor w0 = ctx.qm.graph.initializers.at(qw.weight).to(at::kFloat);
    const std::string& bname = rm.bias_name(l);
    const at::Tensor b0 = bname.empty() ? at::Tensor() : ctx.qm.graph.initializers.at(bname).to(at::kFloat);
    ju["loss_initial"] = unit_loss_eval(rm, u, cache);

    at::Tensor dw = at::zeros_like(w0).set_requires_grad(true);
    at::Tensor db = b0.defined() ? at::zeros_like(b0).set_requires_grad(true) : at::Tensor();
    at::Tensor ws = qw.params.scale.to(at::kFloat).clone().set_requires_grad(true);
    const at::Tensor wz = broadcast_param(qw.params.zero_point.to(at::kFloat), qw.scheme, w0.sizes());
    std::vector<torch::optim::OptimizerParamGroup> groups;
    auto group = [&](at::Tensor t, double lr) {
      groups.emplace_back(std::vector<at::Tensor>{t}, std::make_unique<torch::optim::AdamOptions>(lr));
    };
    group(dw, o.adaquant_lr_w);
    group(ws, o.adaquant_lr_wrange);
    if (db.defined()) group(db, o.adaquant_lr_b);
    if (act) {
      act->scale = act->scale.detach().clone().set_requires_grad(true);
      group(act->scale, o.adaquant_lr_in);
    }
    torch::optim::Adam opt(std::move(groups), torch::optim::AdamOptions(o.adaquant_lr_w));
    const double qmin = static_cast<double>(qw.scheme.qmin()), qmax = static_cast<double>(qw.scheme.qmax());
    auto current_weight = [&]() {
      return fake_quant_ste(w0 + dw, broadcast_param(ws, qw.scheme, w0.sizes()), wz, qmin, qmax);
    };
    rm.quant().set_grad_enabled(true);
    const int64_t n = cache.rows(), batch = std::min(o.adaquant_batch, n);
    char label[160];
    std::snprintf(label, sizeof label, "adaquant %d/%d %s", ++done, todo, l.c_str());
    Progress bar(label, o.progress ? o.adaquant_iters : 0, "it");
    LoopTimer timer;
    int64_t it = 0;
    for (; it < o.adaquant_iters; ++it) {
      throw_if_interrupted();  // a safe point: this unit restarts on resume, the earlier ones are saved
      at::Tensor idx = at::randperm(n, g, at::kLong).slice(0, 0, batch);
      rm.set_weight(l, current_weight());
      if (db.defined()) rm.set_bias(l, b0 + db);
      timer.other += timer.lap();
      // AdaQuant's loss is the plain mean squared error.
      auto out = unit_outputs(rm, u, cache, idx);
      at::Tensor loss;
      for (size_t i = 0; i < u.outputs.size(); ++i) {
        at::Tensor li = (out.at(u.outputs[i]) - cache.out[i].gather(idx)).pow(2).mean();
        loss = loss.defined() ? loss + li : li;
      }
      timer.backward_and_step(opt, loss);
      {
        at::NoGradGuard ng;
        ws.clamp_min_(1e-10);
        if (act) act->scale.clamp_min_(1e-8);
      }
      timer.step += timer.lap();
      if (it % 50 == 0) show_loss(bar, "mse", loss);
      bar.advance();
    }
    bar.finish();
    rm.quant().set_grad_enabled(false);
    {
      at::NoGradGuard ng;
      // Write the learned weight, range and bias back: codes of W + dW under the learned scale.
      QParams p = qw.params;
      p.scale = ws.detach().clone().to(qw.params.scale.scalar_type());
      at::Tensor w_new = (w0 + dw).detach();
      qw.codes = quantize(w_new, p, qw.scheme).reshape(qw.codes.sizes()).contiguous();
      qw.params = p;
      ctx.qm.graph.initializers[qw.weight] = w_new.to(ctx.qm.graph.initializers.at(qw.weight).scalar_type());
      rm.use_quantized_weight(l);
      if (db.defined()) {
        at::Tensor b_new = (b0 + db).detach().clone();
        ctx.qm.graph.initializers[bname] = b_new.to(ctx.qm.graph.initializers.at(bname).scalar_type());
        rm.set_bias(l, b_new);
      }
      if (act) act->scale = act->scale.detach();
    }
    ju["loss_learned"] = unit_loss_eval(rm, u, cache);
    finish_unit_report(ju, it, timer, t0);
    if (!o.adaquant_sequential && act) act->enabled = false;
    return {ju, current_state(ui)};
  };

  // Parallel mode: every unit independent, taken from a shared counter (one rank: in order). A
  // unit's subgraph can hold other layers (a shortcut conv's unit ends after the residual Add), so
  // each unit is learned against the starting model and its result applied only at the end:
  // the same result whichever rank learns it, in whatever order. Rank 0 collects the other ranks'
  // units and records the checkpoint in unit order (its `next` is a prefix), so a killed job
  // resumes from the units finished in front.
  auto run_parallel = [&](const std::vector<size_t>& todo_units, const std::vector<size_t>& replayed) {
    std::map<size_t, std::map<std::string, at::Tensor>> learned;  // rank 0: every unit's result
    std::map<size_t, nlohmann::json> reports;                       // rank 0: not yet recorded
    size_t front = static_cast<size_t>(std::max<int64_t>(ck.next("units"), 0));
    auto record_front = [&]() {
      for (; front < units.size(); ++front) {
        if (pinned.count(units[front].layers[0])) continue;
        auto it = reports.find(front);
        if (it == reports.end()) break;
        jr.push_back(it->second);
        ck.record("units", static_cast<int64_t>(front) + 1, learned.at(front), jr, gen);
        reports.erase(it);
      }
    };
    // Rank 0 takes the other ranks' units until until() holds (only what has arrived, when it
    // holds at once).
    auto receive = [&](const std::function<bool()>& until) {
      record_front();  // rank 0's own units, and trailing pinned ones
      dist::receive_until(kUnitTag, until, [&](const std::string& msg) {
        const nlohmann::json j = nlohmann::json::from_cbor(msg);
        const size_t ui = j.at("unit").get<size_t>();
        for (const auto& [name, t] : j.at("tensors").items())
          learned[ui][name] =
              tensor_from_json(t, "the unit from MPI rank " + std::to_string(j.at("rank").get<int>()), name);
        reports[ui] = j.at("report");
        ++done;
        record_front();
      });
    };
    dist::WorkCounter counter;
    for (int64_t k = counter.next(); k < static_cast<int64_t>(todo_units.size()); k = counter.next()) {
      const size_t ui = todo_units[static_cast<size_t>(k)];
      auto g = at::make_generator<at::CPUGeneratorImpl>(o.seed * 1000003ull + ui);  // the unit's own stream
      const std::map<std::string, at::Tensor> start = current_state(ui);
      auto result = optimise(ui, g);
      apply_saved(ui, [&](const std::string& name) { return start.at(name); });  // back to the start
      if (dist::is_root()) {
        learned[ui] = std::move(result.second);
        reports[ui] = std::move(result.first);
        receive([] { return true; });
      } else {
        nlohmann::json j = {{"unit", ui}, {"rank", dist::rank()}, {"report", result.first}, {"tensors", nlohmann::json::object()}};
        for (const auto& [name, t] : result.second) j["tensors"][name] = tensor_to_json(t);
        const std::vector<uint8_t> bytes = nlohmann::json::to_cbor(j);
        dist::send_to_root(kUnitTag, std::string(bytes.begin(), bytes.end()));
      }
      throw_if_interrupted();  // a safe point: the units in front are in the checkpoint
    }
    if (!dist::is_root()) return;  // a worker's part ends here (the job releases it next)
    receive([&] { return front >= units.size(); });  // what the other ranks still learn
    for (size_t ui : replayed) apply_saved(ui, [&](const std::string& name) { return ck.tensor(name); });
    for (const auto& [ui, saved] : learned) apply_saved(ui, [&](const std::string& name) { return saved.at(name); });
  };

  std::vector<size_t> todo_units, replayed;
  for (size_t ui = 0; ui < units.size(); ++ui) {
    const std::string& l = units[ui].layers[0];
    ActQuant* act = rm.act_of_layer(l);
    if (pinned.count(l)) {
      if (act && o.adaquant_sequential) act->enabled = true;
      continue;
    }
    if (static_cast<int64_t>(ui) < ck.next("units")) {  // finished before an interrupt: replay it
      ++done;
      if (parallel)
        replayed.push_back(ui);  // applied at the end, as the units learned now are
      else
        apply_saved(ui, [&](const std::string& name) { return ck.tensor(name); });
      continue;
    }
    if (parallel) {
      todo_units.push_back(ui);
      continue;
    }
    auto [ju, saved] = optimise(ui, gen);
    jr.push_back(ju);
    ck.record("units", static_cast<int64_t>(ui) + 1, saved, jr, gen);
  }
  if (parallel) run_parallel(todo_units, replayed);
  rm.store_activation_params();
  ctx.report["units"] = jr;
  ctx.report["mode"] = o.adaquant_sequential ? "sequential" : "parallel";
  ctx.report["iters"] = o.adaquant_iters;
}

}  // namespace mixq
