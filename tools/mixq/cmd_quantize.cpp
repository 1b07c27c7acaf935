// mixq quantize MODEL: plan (uniform / MixQuant / a user plan), quantize with a range method,
// simulate and evaluate, export QDQ ONNX + plan + report.
#include <cstdio>

#include "api/quantize_job.h"
#include "api/quantize_outputs.h"
#include "common.h"
#include "core/log.h"
#include "data/dataset.h"
#include "exec/fidelity.h"

namespace mixq::cli {

RunFn setup_quantize(CLI::App& sub) {
  struct Opts {
    GlobalOptions g;
    QuantizeJob job;
    QuantizeOutputs out;
  };
  auto o = std::make_shared<Opts>();
  o->job.defaults.wbits = 4;
  sub.add_option("model", o->job.model_path, "Float ONNX model")->required();
  add_quant_options(sub, o->job);
  add_quantize_output_options(sub, o->job, o->out);
  add_global_options(sub, o->g);
  return [o]() {
    apply_global_options(o->g);
    QuantizeJob& job = o->job;
    finish_quantize_options(job);
    job.qopts.progress = !o->g.quiet;
    prepare_quantize_outputs(job, o->out);
    QuantizeResult r = run_quantize(job);
    nlohmann::json rep = write_quantize_outputs(job, r, o->out);
    if (o->g.json) {
      print_json(rep);
      return 0;
    }
    const PlanCost& c = r.plan.cost;
    std::printf("%s: %s search, %s ranges, %zu layers, avg %.2f weight bits\n", job.model_path.c_str(),
                r.plan.search.c_str(), job.method.c_str(), r.plan.layers.size(), c.avg_wbits);
    std::printf("size %lld bytes (%.1f%% of float %lld), %.3f GBOPs, quantized in %.2f s\n", (long long)c.size_bytes,
                100 * c.size_ratio, (long long)c.float_bytes, c.gbops(), r.seconds_quantize);
    if (r.float_eval && r.float_eval->has_top1) std::printf("top-1 float %.2f%%\n", r.float_eval->top1);
    if (r.quant_eval && r.quant_eval->has_top1) std::printf("top-1 quant %.2f%%\n", r.quant_eval->top1);
    if (!r.sparq.per_tensor.empty()) {
      const SparqStats t = r.sparq.total();
      const nlohmann::json& sj = rep["sparq"];
      std::printf("SPARQ %s on %zu tensors: %.1f%% zeros, %.1f%% of pairs kept 8 bits, windows",
                  job.defaults.act_sparq.enabled ? act_scheme_name(job.defaults.act_sparq).c_str() : "(plan)",
                  r.sparq.per_tensor.size(), 100 * sj["frac_zeros"].get<double>(), 100 * t.frac_pairs_8bit());
      for (const auto& [w, f] : sj["window_share"].items()) std::printf(" %s %.1f%%", w.c_str(), 100 * f.get<double>());
      std::printf("\n");
    }
    if (r.quant_eval && !r.quant_eval->fidelity.empty())
      std::printf("fidelity to the float model on %lld samples:\n%s", (long long)r.quant_eval->samples,
                  fidelity_text(r.quant_eval->fidelity).c_str());
    if (!job.save_outputs.empty() && r.quant_eval) std::printf("wrote %s\n", job.save_outputs.c_str());
    for (const std::string* p : {&o->out.onnx, &o->out.plan, &o->out.report, &o->out.report_html})
      if (!p->empty()) std::printf("wrote %s\n", p->c_str());
    if (!o->out.pack.empty()) print_pack_summary(rep["pack"]);
    return 0;
  };
}

}  // namespace mixq::cli
