// LAPQ (Nahshan et al., "Loss aware post-training quantization", Machine Learning 2021; seed 001):
// clipping ranges chosen for the loss of the whole quantized network, not tensor by tensor.
//  1. For p in linspace(2, 4, 10): every clipping range (weights per tensor or per channel as the
//     plan says, activations per tensor) at its Lp-optimal value alpha_p = argmin E|Q(x) - x|^p
//     (BRECQ's grid of 80 shrinks); the calibration loss L(p) of the quantized model.
//  2. p* = the minimum of a quadratic fitted to L(p), clamped to [2, 4]; the best grid p when the
//     fit is not convex, or when L(p*) turns out worse than that grid point (ours).
//  3. All clipping ranges of unpinned layers jointly, from alpha_p*, by a derivative-free method
//     (NLopt PRAXIS, Brent's form of Powell's; or BOBYQA) over log multipliers of the ranges, on
//     the calibration loss; 2 sweeps (paper: 1-2 Powell iterations); the best point seen is kept.
//  4. Optional (--lapq-bias-corr): per-channel bias correction b_c += E[(W - W~) x], the mean
//     output error of the weight quantization, kept only when it lowers the calibration loss.
// Calibration loss: cross-entropy with labels, else the fidelity loss to the float outputs, on the
// first 512 calibration samples (the paper's calibration set size).
#include <chrono>
#include <cmath>
#include <cstdio>

#include "core/interrupt.h"
#include "core/log.h"
#include "quant/methods/lapq_model.h"
#include "quant/methods/lapq_search.h"
#include "quant/methods/method.h"

namespace mixq {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void run_lapq(MethodContext& ctx, bool joint) {
  install_interrupt_handler();
  const ReconOptions& o = ctx.opts;
  MIXQ_CHECK(o.lapq_samples >= 1, ErrorKind::kInvalidArgument, "--lapq-samples must be >= 1 (got ", o.lapq_samples,
             ")");
  MIXQ_CHECK(o.lapq_p_points >= 1, ErrorKind::kInvalidArgument, "LAPQ needs at least one p on its grid");
  const auto t0 = Clock::now();
  auto subset = head_dataset(ctx.calib, o.lapq_samples);
  LapqModel lm(ctx, *subset);
  nlohmann::json& rep = ctx.report;
  rep["samples"] = subset->size();
  rep["loss"] = lm.has_labels() ? "cross-entropy" : "fidelity to the float outputs";

  // Steps 1-2: the p grid and its quadratic fit.
  std::vector<double> ps, losses;
  nlohmann::json grid = nlohmann::json::array();
  for (int i = 0; i < o.lapq_p_points; ++i) {
    const double p = o.lapq_p_points == 1 ? 2.0 : 2.0 + 2.0 * i / (o.lapq_p_points - 1);
    lm.set_lp_init(p);
    const double l = lm.loss({});
    ps.push_back(p);
    losses.push_back(l);
    grid.push_back({{"p", p}, {"loss", l}});
    method_say(o, "lapq: p %.3f  loss %.5f  (%d/%d)", p, l, i + 1, o.lapq_p_points);
    if (interrupted()) break;
  }
  const QuadraticFit fit = fit_quadratic_min(ps, losses, 2.0, 4.0);
  size_t best = 0;
  for (size_t i = 1; i < losses.size(); ++i)
    if (losses[i] < losses[best]) best = i;
  lm.set_lp_init(fit.p_star);
  double loss_init = lm.loss({});
  std::string start = fit.from_fit ? "quadratic fit" : "best grid p (fit not convex)";
  if (!(loss_init <= losses[best])) {  // the fit's vertex measured worse than a grid point
    lm.set_lp_init(ps[best]);
    loss_init = losses[best];
    start = "best grid p (better than the fit's p*)";
  }
  rep["p_grid"] = grid;
  rep["fit"] = {{"a", fit.a}, {"b", fit.b}, {"c", fit.c}, {"convex", fit.from_fit}};
  rep["p_star"] = fit.p_star;
  rep["p_start"] = lm.p();
  rep["start"] = start;
  rep["loss_init"] = loss_init;
  rep["seconds_init"] = since(t0);
  method_say(o, "lapq: p* %.3f (start p %.3f)  loss %.5f  %.1f s", fit.p_star, lm.p(), loss_init, since(t0));

  // Step 3: the joint search.
  std::vector<double> x;
  double loss = loss_init;
  if (joint && !interrupted()) {
    const auto tj = Clock::now();
    JointOptions jo;
    jo.optimizer = o.lapq_optimizer;
    jo.sweeps = o.lapq_sweeps;
    jo.max_evals = o.lapq_evals;
    jo.seed = o.seed;
    jo.stop = [] { return interrupted(); };
    jo.on_sweep = [&](int sweep, int64_t evals, double, double best_loss) {
      method_say(o, "lapq joint sweep %d: best loss %.5f  %lld evaluations  %.1f s", sweep, best_loss,
          static_cast<long long>(evals), since(tj));
    };
    method_say(o, "lapq joint: %zu clipping ranges, %s, %d sweeps, start loss %.5f", lm.dims(), jo.optimizer.c_str(),
        jo.sweeps, loss_init);
    JointResult jr = minimize_joint([&](const std::vector<double>& v) { return lm.loss(v); },
                                    std::vector<double>(lm.dims(), 0.0), jo);
    x = jr.x;
    loss = jr.loss_best;
    lm.loss(x);  // the model holds the best point again (the search's last point may be another)
    nlohmann::json mult = nlohmann::json::object();
    const auto names = lm.dim_names();
    for (size_t k = 0; k < x.size(); ++k) mult[names[k]] = std::exp(x[k]);
    rep["joint"] = {{"optimizer", o.lapq_optimizer},
                    {"dims", lm.dims()},
                    {"evals", jr.evals},
                    {"sweep_best", jr.sweep_best},
                    {"stop", jr.stop_reason},
                    {"loss_start", jr.loss_start},
                    {"loss_best", jr.loss_best},
                    {"multipliers", mult},
                    {"seconds", since(tj)}};
    ctx.interrupted = ctx.interrupted || jr.interrupted;
  }

  // Step 4: bias correction, kept only when it helps.
  if (o.lapq_bias_corr && !interrupted()) {
    lm.set_point(x);  // the start p may have changed without an evaluation (lapq-init)
    const int n = lm.bias_correct();
    const double l = lm.loss(x);
    const bool keep = l < loss;
    if (!keep) lm.undo_bias_correction();
    rep["bias_corr"] = {{"layers", n}, {"loss", l}, {"kept", keep}};
    if (keep) loss = l;
    method_say(o, "lapq: bias correction on %d layers: loss %.5f (%s)", n, l, keep ? "kept" : "undone");
  }
  lm.write_back();
  rep["loss_final"] = loss;
  rep["evaluations"] = lm.evaluations();
  rep["seconds"] = since(t0);
  if (interrupted()) ctx.interrupted = true;
}

}  // namespace

void refine_lapq(MethodContext& ctx) { run_lapq(ctx, true); }
void refine_lapq_init(MethodContext& ctx) { run_lapq(ctx, false); }

}  // namespace mixq
