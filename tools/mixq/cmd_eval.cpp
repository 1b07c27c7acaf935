// mixq eval MODEL --data SPEC: runs the model on a dataset. Top-1 and cross-entropy where the data
// has labels and the first output is [batch, classes]; with --reference (a float .onnx run on the
// same inputs, or an .npz of stored outputs such as ONNX Runtime's) the fidelity of every output
// (SQNR, cosine, max error, KL, top-1 agreement); --save-outputs writes every output. No labels
// are needed for anything but top-1.
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "common.h"
#include "core/atomic_file.h"
#include "core/log.h"
#include "data/dataset.h"
#include "data/npy.h"
#include "exec/evaluate.h"
#include "exec/fold_constants.h"

namespace mixq::cli {

RunFn setup_eval(CLI::App& sub) {
  struct Opts {
    GlobalOptions g;
    std::string model, data = "fmnist:test";
    int64_t batch = 250;
    PreprocessOverride pre;
    std::string save_logits, save_outputs, reference, metric = "auto";
  };
  auto o = std::make_shared<Opts>();
  sub.add_option("model", o->model, "ONNX model file")->required();
  sub.add_option("-d,--data", o->data,
                 "Dataset: fmnist:train|test[:N], FILE.npz, DIR of .npy, FILE.npy, .pb")
      ->capture_default_str();
  sub.add_option("-b,--batch", o->batch, "Batch size")->check(CLI::Range(1, 1 << 20))->capture_default_str();
  add_data_options(sub, o->pre, nullptr);
  sub.add_option("--reference", o->reference,
                 "Compare every output with a reference: a (float) .onnx model run on the same inputs, or an .npz of "
                 "stored outputs named after the model's outputs (e.g. ONNX Runtime's)");
  sub.add_option("--metric", o->metric, "What the summary leads with: auto (top-1 with labels, else SQNR), top1, "
                                        "sqnr, cos, kl, maxabs")
      ->capture_default_str();
  sub.add_option("--save-outputs", o->save_outputs, "Write every output (all samples) to this .npz, named after the outputs");
  sub.add_option("--save-logits", o->save_logits, "Write the first output (all samples) to this .npy file");
  add_global_options(sub, o->g);
  return [o]() {
    apply_global_options(o->g);
    const Metric metric_req = parse_metric(o->metric);
    for (const std::string* p : {&o->save_logits, &o->save_outputs})
      MIXQ_CHECK(p->empty() || !same_file(*p, o->model), ErrorKind::kInvalidArgument,
                 "refusing to overwrite the input model '", o->model, "' with ", *p);
    Graph g = load_model(o->model);
    bool found = false;
    Preprocess pp = o->pre.over(preprocess_from_metadata(g, &found));
    auto ds = open_dataset(o->data, g.inputs, pp);
    if (!found && !o->pre.mean && o->data.rfind("fmnist:", 0) == 0)
      log::warn(o->model + " has no mixq.input_* metadata; using x = pixel/255 without normalization "
                           "(pass --mean/--std if the model was trained with them)");
    std::vector<ValueInfo> outputs = g.outputs;
    Executor ex(std::move(g));
    EvalOptions eo;
    eo.batch_size = o->batch;
    eo.progress = !o->g.quiet;
    eo.keep_outputs = !o->save_logits.empty() || !o->save_outputs.empty();
    std::unique_ptr<Executor> ref_ex;
    if (!o->reference.empty()) {
      const std::string ext = std::filesystem::path(o->reference).extension().string();
      if (ext == ".npz") {
        eo.reference = reference_arrays(load_npz(o->reference), outputs, ds->size(), o->reference);
      } else {
        Graph rg = load_model(o->reference);
        MIXQ_CHECK(rg.outputs.size() == outputs.size(), ErrorKind::kInvalidArgument, "--reference ", o->reference,
                   " has ", rg.outputs.size(), " outputs but ", o->model, " has ", outputs.size());
        ref_ex = std::make_unique<Executor>(std::move(rg));
        eo.reference = reference_executor(*ref_ex);
        eo.reference_top1 = true;
      }
    }
    EvalResult r = evaluate(ex, *ds, eo);
    if (!o->save_logits.empty()) save_npy(o->save_logits, r.outputs.at(0));
    if (!o->save_outputs.empty()) {
      std::map<std::string, at::Tensor> arrays;
      for (size_t i = 0; i < outputs.size(); ++i) arrays[outputs[i].name] = r.outputs[i];
      save_npz(o->save_outputs, arrays);
    }
    const Metric m = resolve_metric(metric_req, r.has_top1, r.has_top1);
    std::optional<double> value;
    if (m == Metric::kTop1 && r.has_top1) value = r.top1;
    else if (!r.fidelity.empty()) value = summary_value(m, r.fidelity);
    auto opt = [](bool has, double v) { return has ? nlohmann::json(v) : nlohmann::json(nullptr); };
    if (o->g.json) {
      nlohmann::json j = {{"model", o->model}, {"data", o->data}, {"top1", opt(r.has_top1, r.top1)},
                          {"correct", opt(r.has_top1, double(r.correct))}, {"samples", r.samples},
                          {"loss", opt(r.has_top1, r.loss)}, {"seconds", r.seconds},
                          {"images_per_second", r.samples / r.seconds}, {"metric", metric_name(m)},
                          {"metric_value", value && std::isfinite(*value) ? nlohmann::json(*value) : nlohmann::json(nullptr)}};
      if (!o->reference.empty()) {
        j["reference"] = o->reference;
        j["fidelity"] = fidelity_json(r.fidelity);
        j["top1_reference"] = r.reference_score ? nlohmann::json(r.reference_score->top1) : nlohmann::json(nullptr);
      }
      print_json(j);
    } else {
      if (r.has_top1)
        std::printf("%s on %s: top-1 %.2f%% (%lld/%lld), loss %.4f, %.2f s (%.0f samples/s)\n", o->model.c_str(),
                    ds->describe().c_str(), r.top1, (long long)r.correct, (long long)r.samples, r.loss, r.seconds,
                    r.samples / r.seconds);
      else
        std::printf("%s on %s: %lld samples, %.2f s (%.0f samples/s)%s\n", o->model.c_str(), ds->describe().c_str(),
                    (long long)r.samples, r.seconds, r.samples / r.seconds,
                    ds->has_labels() ? " (no top-1: the first output is not [batch, classes] scores)" : "");
      if (r.reference_score)
        std::printf("reference %s: top-1 %.2f%%\n", o->reference.c_str(), r.reference_score->top1);
      if (!r.fidelity.empty())
        std::printf("fidelity to %s:\n%s", o->reference.c_str(), fidelity_text(r.fidelity).c_str());
      for (const std::string* p : {&o->save_logits, &o->save_outputs})
        if (!p->empty()) std::printf("wrote %s\n", p->c_str());
    }
    return 0;
  };
}

}  // namespace mixq::cli
