// mixq demo: the default end-to-end job on the bundled fixtures (api/demo.h), printed as rows.
#include <cstdio>

#include "api/demo.h"
#include "common.h"

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
    DemoOptions d;
    d.models = o->models;
    d.data = o->data;
    d.calib = o->calib;
    d.method = o->method;
    d.only = o->only;
    d.float_only = o->float_only;
    d.progress = !o->g.quiet;
    if (!o->g.json)
      std::printf("%-20s %-20s %8s %9s %10s %7s %8s\n", "model", "config", "top1", "vs float", "size", "ratio", "seconds");
    auto print_row = [&](const nlohmann::json& r) {
      if (o->g.json) return;
      const std::string name = r["model"], cfg = r["config"];
      if (r.contains("error")) {
        std::printf("%-20s %-20s not run: %s\n", name.c_str(), cfg.c_str(), r["error"].get<std::string>().c_str());
      } else if (cfg == "float") {
        std::printf("%-20s %-20s %7.2f%% %9s %10s %7s %8.2f   (PyTorch %.2f%%: %s)\n", name.c_str(), "float",
                    r["top1"].get<double>(), "", "", "", r["seconds"].get<double>(), r["top1_pytorch"].get<double>(),
                    r["matches_pytorch"].get<bool>() ? "match" : "MISMATCH");
      } else {
        std::printf("%-20s %-20s %7.2f%% %+9.2f %10lld %6.1f%% %8.2f   (avg %.2f weight bits)\n", name.c_str(),
                    cfg.c_str(), r["top1"].get<double>(), 0.0 - r["drop"].get<double>(),
                    (long long)r["size_bytes"].get<int64_t>(), 100 * r["size_ratio"].get<double>(),
                    r["seconds"].get<double>(), r["avg_wbits"].get<double>());
      }
    };
    const nlohmann::json res = run_demo(d, print_row);
    const bool float_match = res["float_matches_pytorch"].get<bool>();
    if (o->g.json) print_json(res);
    else
      std::printf("\n%s\n", float_match ? "every float model matches its PyTorch accuracy (within 0.01 points)"
                                        : "MISMATCH: some float model differs from its PyTorch accuracy");
    return float_match ? 0 : 1;
  };
}

}  // namespace mixq::cli
