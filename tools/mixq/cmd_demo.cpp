// mixq demo: the default end-to-end job on the bundled fixtures. Today it evaluates every bundled
// float model on the Fashion-MNIST test set and checks the result against the PyTorch accuracy
// recorded when the fixture was made (models/fixtures.json).
#include <cmath>
#include <cstdio>
#include <fstream>

#include "common.h"
#include "core/log.h"
#include "data/dataset.h"
#include "exec/evaluate.h"
#include "exec/shapes.h"
#include "graph/layers.h"
#include "onnx/import.h"

namespace mixq::cli {

RunFn setup_demo(CLI::App& sub) {
  struct Opts {
    GlobalOptions g;
    std::string models = default_models_dir();
    std::string data = "fmnist:test";
  };
  auto o = std::make_shared<Opts>();
  sub.add_option("--models", o->models, "Directory with fixtures.json and the .onnx fixtures")
      ->capture_default_str();
  sub.add_option("-d,--data", o->data, "Evaluation dataset")->capture_default_str();
  add_global_options(sub, o->g);
  return [o]() {
    apply_global_options(o->g);
    const std::string index = o->models + "/fixtures.json";
    std::ifstream f(index);
    MIXQ_CHECK(f.good(), ErrorKind::kIO, "cannot open '", index,
               "' (pass --models DIR with the bundled fixtures)");
    nlohmann::json fx;
    try {
      fx = nlohmann::json::parse(f);
    } catch (const std::exception& e) {
      throw Error(ErrorKind::kInvalidData, index + ": not valid JSON: " + e.what());
    }
    nlohmann::json rows = nlohmann::json::array();
    bool all_match = true;
    if (!o->g.json)
      std::printf("%-20s %9s %11s %10s %12s %7s %8s\n", "model", "params", "MACs", "top1 mixq",
                  "top1 pytorch", "delta", "seconds");
    for (const auto& [name, m] : fx.at("models").items()) {
      const std::string path = o->models + "/" + m.at("file").get<std::string>();
      Graph g = load_onnx(path);
      Preprocess pp = preprocess_from_metadata(g);
      auto ds = open_dataset(o->data, g.inputs, pp);
      auto layers = find_layers(g);
      Executor ex(std::move(g));
      annotate_macs(ex, layers);
      int64_t params = 0, macs = 0;
      for (const auto& L : layers) { params += L.params; macs += L.macs; }
      EvalOptions eo;
      eo.label = name;
      EvalResult r = evaluate(ex, *ds, eo);
      double ref = m.at("top1").get<double>();
      bool comparable = o->data == "fmnist:test";
      double delta = r.top1 - ref;
      if (comparable && std::fabs(delta) > 0.01 + 1e-9) all_match = false;
      rows.push_back({{"model", name}, {"params", params}, {"macs", macs}, {"top1", r.top1},
                      {"top1_pytorch", ref}, {"seconds", r.seconds}});
      if (!o->g.json)
        std::printf("%-20s %9lld %11lld %9.2f%% %11.2f%% %+7.2f %8.2f\n", name.c_str(),
                    (long long)params, (long long)macs, r.top1, ref, comparable ? delta : NAN, r.seconds);
    }
    if (o->g.json) print_json({{"data", o->data}, {"models", rows}, {"all_match", all_match}});
    else
      std::printf("\n%s\n", all_match ? "every model matches its PyTorch accuracy (within 0.01 points)"
                                      : "MISMATCH: some model differs from its PyTorch accuracy");
    return all_match ? 0 : 1;
  };
}

}  // namespace mixq::cli
