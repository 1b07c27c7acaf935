#include "api/demo.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "api/quantize_job.h"
#include "exec/evaluate.h"
#include "exec/executor.h"
#include "mixq/error.h"
#include "exec/fold_constants.h"

namespace mixq {

nlohmann::json run_demo(const DemoOptions& o, const std::function<void(const nlohmann::json&)>& on_row) {
  const std::string index = o.models + "/fixtures.json";
  std::ifstream f(index);
  MIXQ_CHECK(f.good(), ErrorKind::kIO, "cannot open '", index, "' (pass --models DIR with the bundled fixtures)");
  nlohmann::json fx;
  try {
    fx = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kInvalidData, index + ": not valid JSON: " + e.what());
  }
  struct Config {
    const char* label;
    const char* search;
    int wbits;
    double budget;
  };
  // The last row is the budgeted allocation (sensitivity table + integer program) at an average
  // below the uniform W4 plan: where mixq's mixed precision pays off.
  std::vector<Config> configs = {{"W8A8 uniform", "uniform", 8, 0}, {"W4A8 uniform", "uniform", 4, 0},
                                 {"MixQuant avg 4b A8", "mixquant", 4, 4.0}, {"IP (kl) avg 3.5b A8", "ip", 4, 3.5}};
  if (o.float_only) configs.clear();
  nlohmann::json rows = nlohmann::json::array();
  auto add = [&](nlohmann::json row) {
    if (on_row) on_row(row);
    rows.push_back(std::move(row));
  };
  bool float_match = true;
  for (const auto& [name, m] : fx.at("models").items()) {
    if (!o.only.empty() && std::find(o.only.begin(), o.only.end(), name) == o.only.end()) continue;
    QuantizeJob job;
    job.model_path = o.models + "/" + m.at("file").get<std::string>();
    job.calib = o.calib;
    job.eval = o.data;
    job.method = o.method;
    job.qopts.progress = o.progress;
    double top1_float = NAN;
    {
      Graph g = load_model(job.model_path);
      auto ds = open_dataset(o.data, g.inputs, preprocess_from_metadata(g));
      Executor ex(std::move(g));
      EvalOptions eo;
      eo.label = name + " float";
      eo.progress = o.progress;
      EvalResult r = evaluate(ex, *ds, eo);
      top1_float = r.top1;
      const double ref = m.at("top1").get<double>();
      const bool match = o.data != "fmnist:test" || std::fabs(r.top1 - ref) <= 0.01 + 1e-9;
      float_match = float_match && match;
      add({{"model", name}, {"config", "float"}, {"top1", r.top1}, {"top1_pytorch", ref}, {"matches_pytorch", match},
           {"seconds", r.seconds}});
    }
    for (const auto& c : configs) {
      QuantizeJob q = job;
      q.eval_float = false;
      q.search = c.search;
      q.search_opts.wbits = c.wbits;
      q.defaults.wbits = c.wbits;
      q.search_opts.budget_avg_wbits = c.budget;
      QuantizeResult r;
      try {
        r = run_quantize(q);
      } catch (const Error& e) {
        // E.g. a 4-bit average is out of reach when a pinned first/last layer holds most weights
        // (the MLP's first layer; embedding tables are never pinned): say so and go on.
        add({{"model", name}, {"config", c.label}, {"error", e.what()}});
        continue;
      }
      const PlanCost& pc = r.plan.cost;
      const double top1 = r.quant_eval->top1;
      add({{"model", name}, {"config", c.label}, {"top1", top1}, {"drop", top1_float - top1},
           {"avg_wbits", pc.avg_wbits}, {"size_bytes", pc.size_bytes}, {"size_ratio", pc.size_ratio},
           {"seconds", r.seconds_quantize}});
    }
  }
  return {{"data", o.data}, {"calib", o.calib}, {"method", o.method}, {"rows", rows}, {"float_matches_pytorch", float_match}};
}

}  // namespace mixq
