// mixq run model.mxq --data SPEC: runs a packed model on the libtorch-free runtime over a dataset,
// scored like `mixq eval`: top-1 where the data has labels and the first output is [batch, classes]
// scores; with --reference (the float .onnx run on the same inputs, or an .npz of stored outputs)
// the fidelity of every output. No labels needed.
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "common.h"
#include "data/npy.h"
#include "exec/evaluate.h"
#include "exec/fold_constants.h"
#include "mixq/error.h"
#include "rt_data.h"

namespace mixq::cli {

RunFn setup_run(CLI::App& sub) {
  struct Opts {
    GlobalOptions g;
    std::string model, data = "fmnist:test", isa = "auto", reference, save_outputs, metric = "auto";
    int64_t batch = 250;
    PreprocessOverride pre;
  };
  auto o = std::make_shared<Opts>();
  sub.add_option("model", o->model, "Packed model (.mxq)")->required();
  sub.add_option("-d,--data", o->data, "Dataset (as for eval)")->capture_default_str();
  sub.add_option("-b,--batch", o->batch, "Batch size")->check(CLI::Range(1, 1 << 20))->capture_default_str();
  sub.add_option("--isa", o->isa, "Kernel path: auto (MIXQ_ISA or cpuid), ref, avx2, avx512")->capture_default_str();
  sub.add_option("--reference", o->reference,
                 "Compare every output with the float .onnx model run on the same inputs, or with an .npz of stored "
                 "outputs named after the model's outputs");
  sub.add_option("--metric", o->metric, "Summary metric: auto, top1, sqnr, cos, kl, maxabs")->capture_default_str();
  sub.add_option("--save-outputs", o->save_outputs, "Write every output (all samples) to this .npz");
  add_data_options(sub, o->pre, nullptr);
  add_global_options(sub, o->g);
  return [o]() {
    apply_global_options(o->g);
    const Metric metric_req = parse_metric(o->metric);
    const rt::ModelOptions mo = runtime_options(o->isa, o->g.threads);
    rt::Model m = rt::Model::load(o->model, mo);
    auto ds = open_dataset_for(m.packed(), o->data, o->pre);
    std::vector<std::string> names;
    std::vector<ValueInfo> outs;
    for (const auto& d : m.packed().outputs) {
      names.push_back(d.name);
      ValueInfo v;
      v.name = d.name;
      outs.push_back(v);
    }
    EvalOptions eo;
    eo.batch_size = o->batch;
    eo.progress = !o->g.quiet;
    eo.label = "run";
    eo.keep_outputs = !o->save_outputs.empty();
    std::unique_ptr<Executor> ref_ex;
    if (!o->reference.empty()) {
      if (std::filesystem::path(o->reference).extension() == ".npz") {
        eo.reference = reference_arrays(load_npz(o->reference), outs, ds->size(), o->reference);
      } else {
        ref_ex = std::make_unique<Executor>(load_model(o->reference));
        eo.reference = reference_executor(*ref_ex);
        eo.reference_top1 = true;
      }
    }
    auto run = [&m](const std::vector<at::Tensor>& in) {
      Batch b;
      b.inputs = in;
      return from_runtime(m.run(to_runtime(b)));
    };
    EvalResult r = evaluate(run, names, o->model, *ds, eo);
    if (!o->save_outputs.empty()) {
      std::map<std::string, at::Tensor> arrays;
      for (size_t i = 0; i < names.size(); ++i) arrays[names[i]] = r.outputs[i];
      save_npz(o->save_outputs, arrays);
    }
    int int_layers = 0;
    int64_t weight_bytes = 0;
    for (const auto& p : m.layer_paths()) {
      int_layers += p.int_path;
      weight_bytes += p.weight_bytes;
    }
    if (o->g.verbose)
      for (const auto& p : m.layer_paths())
        std::fprintf(stderr, "layer %s (%s): %s%s, kernel %s, %lld weight bytes held\n", p.node.c_str(), p.op.c_str(),
                     p.int_path ? "integer" : "float: ", p.int_path ? "" : p.why_float.c_str(), p.kernel.c_str(),
                     (long long)p.weight_bytes);
    const Metric metric = resolve_metric(metric_req, r.has_top1, r.has_top1);
    std::optional<double> value;
    if (metric == Metric::kTop1 && r.has_top1) value = r.top1;
    else if (!r.fidelity.empty()) value = summary_value(metric, r.fidelity);
    auto opt = [](bool has, double v) { return has ? nlohmann::json(v) : nlohmann::json(nullptr); };
    const double sec = r.seconds;
    if (o->g.json) {
      nlohmann::json j = {{"model", o->model}, {"data", o->data}, {"top1", opt(r.has_top1, r.top1)},
                          {"correct", opt(r.has_top1, double(r.correct))}, {"samples", r.samples},
                          {"loss", opt(r.has_top1, r.loss)}, {"seconds", sec}, {"images_per_second", r.samples / sec},
                          {"isa", kernels::isa_name(m.isa())}, {"threads", mo.threads},
                          {"integer_layers", int_layers}, {"layers", m.layer_paths().size()},
                          {"weight_bytes", weight_bytes}, {"metric", metric_name(metric)},
                          {"metric_value", value && std::isfinite(*value) ? nlohmann::json(*value) : nlohmann::json(nullptr)}};
      if (!o->reference.empty()) {
        j["reference"] = o->reference;
        j["fidelity"] = fidelity_json(r.fidelity);
        j["top1_reference"] = r.reference_score ? nlohmann::json(r.reference_score->top1) : nlohmann::json(nullptr);
      }
      print_json(j);
    } else {
      if (r.has_top1)
        std::printf("%s on %s: top-1 %.2f%% (%lld/%lld), loss %.4f, %.2f s (%.0f img/s), %s, %d of %zu layers integer\n",
                    o->model.c_str(), ds->describe().c_str(), r.top1, (long long)r.correct, (long long)r.samples, r.loss,
                    sec, r.samples / sec, kernels::isa_name(m.isa()), int_layers, m.layer_paths().size());
      else
        std::printf("%s on %s: %lld samples, %.2f s (%.0f samples/s), %s, %d of %zu layers integer\n", o->model.c_str(),
                    ds->describe().c_str(), (long long)r.samples, sec, r.samples / sec, kernels::isa_name(m.isa()),
                    int_layers, m.layer_paths().size());
      if (r.reference_score) std::printf("reference %s: top-1 %.2f%%\n", o->reference.c_str(), r.reference_score->top1);
      if (!r.fidelity.empty()) std::printf("fidelity to %s:\n%s", o->reference.c_str(), fidelity_text(r.fidelity).c_str());
      if (!o->save_outputs.empty()) std::printf("wrote %s\n", o->save_outputs.c_str());
    }
    return 0;
  };
}

}  // namespace mixq::cli
