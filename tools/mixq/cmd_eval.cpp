// mixq eval MODEL --data SPEC: runs the model on a dataset. Top-1 and cross-entropy where the data
// has labels and the first output is [batch, classes]; with --reference (a float .onnx run on the
// same inputs, or an .npz of stored outputs such as ONNX Runtime's) the fidelity of every output
// (SQNR, cosine, max error, KL, top-1 agreement); --save-outputs writes every output. No labels
// are needed for anything but top-1.
#include <cmath>
#include <cstdio>

#include "common.h"
#include "core/atomic_file.h"
#include "core/log.h"
#include "data/dataset.h"
#include "data/npy.h"
#include "exec/evaluate.h"
#include "exec/fold_constants.h"
#include "eval_report.h"

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
    set_reference(o->reference, outputs, ds->size(), eo, ref_ex);
    EvalResult r = evaluate(ex, *ds, eo);
    if (!o->save_logits.empty()) save_npy(o->save_logits, r.outputs.at(0));
    std::vector<std::string> names;
    for (const auto& v : outputs) names.push_back(v.name);
    if (!o->save_outputs.empty()) save_outputs(o->save_outputs, names, r);
    if (o->g.json) {
      print_json(eval_json(r, metric_req, o->model, o->data, o->reference));
    } else {
      print_eval(r, o->model, *ds, o->reference);
      for (const std::string* p : {&o->save_logits, &o->save_outputs})
        if (!p->empty()) std::printf("wrote %s\n", p->c_str());
    }
    return 0;
  };
}

}  // namespace mixq::cli
