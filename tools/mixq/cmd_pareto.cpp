// mixq pareto MODEL: measure the sensitivity table once (cached, resumable), then emit the
// size x BOPs x predicted-accuracy front: the greedy Pareto curve plus integer-program optima on a
// grid of average weight bits, and (when the table has activation candidates) on a grid of BOPs
// budgets, where weight and activation bits trade against each other. Any budget can then be
// re-solved from the table with `mixq plan`.
#include <cstdio>

#include "api/pareto_job.h"
#include "api/quantize_job.h"
#include "common.h"

namespace mixq::cli {

RunFn setup_pareto(CLI::App& sub) {
  struct Opts {
    GlobalOptions g;
    QuantizeJob job;
    ParetoOutputs out;
  };
  auto o = std::make_shared<Opts>();
  o->job.defaults.wbits = 8;
  sub.add_option("model", o->job.model_path, "Float ONNX model")->required();
  add_quant_options(sub, o->job);
  add_pareto_output_options(sub, o->out);
  add_global_options(sub, o->g);
  return [o]() {
    apply_global_options(o->g);
    const nlohmann::json j = run_pareto(o->job, o->out, !o->g.quiet);
    const nlohmann::json& points = j["points"];
    if (o->g.json) {
      print_json(j);
      return 0;
    }
    std::printf("%s: sensitivity table %s (%lld samples, %.1f s), %zu front points (signal %s)\n",
                o->job.model_path.c_str(), o->out.table.c_str(), j["samples"].get<long long>(),
                j["sensitivity_seconds"].get<double>(), points.size(), j["signal"].get<std::string>().c_str());
    std::printf("%-8s %9s %11s %12s %12s %9s\n", "source", "avg bits", "size bytes", "GBOPs", "pred dL", "pred top1");
    for (const auto& p : points)
      if (p["source"].get<std::string>().rfind("ip@", 0) == 0)
        std::printf("%-8s %9.2f %11lld %12.4f %12.5f %9.2f\n", p["source"].get<std::string>().c_str(),
                    p["avg_wbits"].get<double>(), (long long)p["size_bytes"].get<int64_t>(), p["bops"].get<double>() / 1e9,
                    p["predicted_dl"].get<double>(), p["predicted_top1"].get<double>());
    for (const std::string* p : {&o->out.front, &o->out.report_html})
      if (!p->empty()) std::printf("wrote %s\n", p->c_str());
    return 0;
  };
}

}  // namespace mixq::cli
