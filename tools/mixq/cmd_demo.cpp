// mixq demo: the default end-to-end job on the bundled fixtures. For every model in
// models/fixtures.json: the float accuracy (checked against PyTorch's, recorded when the fixture was
// made), then uniform W8A8, uniform W4A8, MixQuant at a 4-bit weight average and the integer
// program over the measured sensitivity table at a 3.5-bit average (all with MSE ranges,
// per-channel weights, first/last layer at 8 bits), with size and time.
#include <cmath>
#include <cstdio>
#include <algorithm>
#include <fstream>

#include "api/quantize_job.h"
#include "common.h"
#include "core/log.h"
#include "exec/fold_constants.h"

namespace mixq::cli {

RunFn setup_demo(CLI::App& sub) {
  struct Opts {
    GlobalOptions g;
    std::string models = default_models_dir();
    std::string data = "fmnist:test";
    std::string calib = "fmnist:train:1024";
    std::string method = "mse";
    std::vector<std::string> only;
    bool float_only = false;
  };
  auto o = std::make_shared<Opts>();
  sub.add_option("--models", o->models, "Directory with fixtures.json and the .onnx fixtures")->capture_default_str();
  sub.add_option("-d,--data", o->data, "Evaluation dataset")->capture_default_str();
  sub.add_option("--calib", o->calib, "Calibration dataset")->capture_default_str();
  sub.add_option("--method", o->method, "Range method for the quantized rows")
      ->check(CLI::IsMember({"minmax", "mse", "percentile", "kl"}))->capture_default_str();
  sub.add_option("--only", o->only, "Run only these fixtures (e.g. fmnist-resnet)");
  sub.add_flag("--float-only", o->float_only, "Only evaluate the float models");
  add_global_options(sub, o->g);
  return [o]() {
    apply_global_options(o->g);
    const std::string index = o->models + "/fixtures.json";
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
    if (o->float_only) configs.clear();
    nlohmann::json rows = nlohmann::json::array();
    bool float_match = true;
    if (!o->g.json)
      std::printf("%-20s %-20s %8s %9s %10s %7s %8s\n", "model", "config", "top1", "vs float", "size", "ratio", "seconds");
    for (const auto& [name, m] : fx.at("models").items()) {
      if (!o->only.empty() && std::find(o->only.begin(), o->only.end(), name) == o->only.end()) continue;
      QuantizeJob job;
      job.model_path = o->models + "/" + m.at("file").get<std::string>();
      job.calib = o->calib;
      job.eval = o->data;
      job.method = o->method;
      job.qopts.progress = !o->g.quiet;
      // Float row: evaluate once through the quantize job of the first config (or alone).
      double top1_float = NAN;
      {
        Graph g = load_model(job.model_path);
        auto ds = open_dataset(o->data, g.inputs, preprocess_from_metadata(g));
        Executor ex(std::move(g));
        EvalOptions eo;
        eo.label = name + " float";
        eo.progress = !o->g.quiet;
        EvalResult r = evaluate(ex, *ds, eo);
        top1_float = r.top1;
        double ref = m.at("top1").get<double>();
        bool match = o->data != "fmnist:test" || std::fabs(r.top1 - ref) <= 0.01 + 1e-9;
        float_match = float_match && match;
        rows.push_back({{"model", name}, {"config", "float"}, {"top1", r.top1}, {"top1_pytorch", ref},
                        {"matches_pytorch", match}, {"seconds", r.seconds}});
        if (!o->g.json)
          std::printf("%-20s %-20s %7.2f%% %9s %10s %7s %8.2f   (PyTorch %.2f%%: %s)\n", name.c_str(), "float", r.top1,
                      "", "", "", r.seconds, ref, match ? "match" : "MISMATCH");
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
          rows.push_back({{"model", name}, {"config", c.label}, {"error", e.what()}});
          if (!o->g.json) std::printf("%-20s %-20s not run: %s\n", name.c_str(), c.label, e.what());
          continue;
        }
        const PlanCost& pc = r.plan.cost;
        double top1 = r.quant_eval->top1;
        rows.push_back({{"model", name}, {"config", c.label}, {"top1", top1}, {"drop", top1_float - top1},
                        {"avg_wbits", pc.avg_wbits}, {"size_bytes", pc.size_bytes}, {"size_ratio", pc.size_ratio},
                        {"seconds", r.seconds_quantize}});
        if (!o->g.json)
          std::printf("%-20s %-20s %7.2f%% %+9.2f %10lld %6.1f%% %8.2f   (avg %.2f weight bits)\n", name.c_str(), c.label,
                      top1, top1 - top1_float, (long long)pc.size_bytes, 100 * pc.size_ratio, r.seconds_quantize,
                      pc.avg_wbits);
      }
    }
    if (o->g.json) print_json({{"data", o->data}, {"calib", o->calib}, {"method", o->method}, {"rows", rows},
                               {"float_matches_pytorch", float_match}});
    else
      std::printf("\n%s\n", float_match ? "every float model matches its PyTorch accuracy (within 0.01 points)"
                                        : "MISMATCH: some float model differs from its PyTorch accuracy");
    return float_match ? 0 : 1;
  };
}

}  // namespace mixq::cli
