// mixq eval MODEL --data SPEC: top-1 accuracy, mean cross-entropy, samples and wall time.
#include <cstdio>

#include "common.h"
#include "core/log.h"
#include "data/dataset.h"
#include "data/npy.h"
#include "exec/evaluate.h"
#include "onnx/import.h"

namespace mixq::cli {

RunFn setup_eval(CLI::App& sub) {
  struct Opts {
    GlobalOptions g;
    std::string model, data = "fmnist:test";
    int64_t batch = 250;
    std::optional<float> mean, std, scale;
    std::string save_logits;
  };
  auto o = std::make_shared<Opts>();
  sub.add_option("model", o->model, "ONNX model file")->required();
  sub.add_option("-d,--data", o->data,
                 "Dataset: fmnist:train|test[:N], FILE.npz, DIR of .npy, FILE.npy, .pb")
      ->capture_default_str();
  sub.add_option("-b,--batch", o->batch, "Batch size")->check(CLI::Range(1, 1 << 20))->capture_default_str();
  sub.add_option("--mean", o->mean, "Input normalization mean for fmnist (default: model metadata)");
  sub.add_option("--std", o->std, "Input normalization std for fmnist (default: model metadata)");
  sub.add_option("--scale", o->scale, "Pixel scale for fmnist (default: model metadata or 1/255)");
  sub.add_option("--save-logits", o->save_logits, "Write every sample's output row to this .npy file");
  add_global_options(sub, o->g);
  return [o]() {
    apply_global_options(o->g);
    Graph g = load_onnx(o->model);
    bool found = false;
    Preprocess pp = preprocess_from_metadata(g, &found);
    if (o->mean) pp.mean = *o->mean;
    if (o->std) pp.std = *o->std;
    if (o->scale) pp.scale = *o->scale;
    MIXQ_CHECK(pp.std != 0.0f, ErrorKind::kInvalidArgument, "--std must not be 0");
    auto ds = open_dataset(o->data, g.inputs, pp);
    if (!found && !o->mean && o->data.rfind("fmnist:", 0) == 0)
      log::warn(o->model + " has no mixq.input_* metadata; using x = pixel/255 without normalization "
                           "(pass --mean/--std if the model was trained with them)");
    Executor ex(std::move(g));
    EvalOptions eo;
    eo.batch_size = o->batch;
    eo.progress = !o->g.quiet;
    eo.keep_logits = !o->save_logits.empty();
    EvalResult r = evaluate(ex, *ds, eo);
    if (!o->save_logits.empty()) save_npy(o->save_logits, r.logits);
    if (o->g.json) {
      print_json({{"model", o->model}, {"data", o->data}, {"top1", r.top1}, {"correct", r.correct},
                  {"samples", r.samples}, {"loss", r.loss}, {"seconds", r.seconds},
                  {"images_per_second", r.samples / r.seconds}});
    } else {
      std::printf("%s on %s: top-1 %.2f%% (%lld/%lld), loss %.4f, %.2f s (%.0f img/s)\n",
                  o->model.c_str(), ds->describe().c_str(), r.top1, (long long)r.correct,
                  (long long)r.samples, r.loss, r.seconds, r.samples / r.seconds);
    }
    return 0;
  };
}

}  // namespace mixq::cli
