// mixq run model.mxq --data SPEC: runs a packed model on the libtorch-free runtime over a dataset,
// scored like `mixq eval`: top-1 where the data has labels and the first output is [batch, classes]
// scores; with --reference (the float .onnx run on the same inputs, or an .npz of stored outputs)
// the fidelity of every output. No labels needed.
#include <cmath>
#include <cstdio>

#include "common.h"
#include "exec/evaluate.h"
#include "eval_report.h"
#include "mixq/error.h"
#include "api/rt_data.h"

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
    set_reference(o->reference, outs, ds->size(), eo, ref_ex);
    auto run = [&m](const std::vector<at::Tensor>& in) {
      Batch b;
      b.inputs = in;
      return from_runtime(m.run(to_runtime(b)));
    };
    EvalResult r = evaluate(run, names, o->model, *ds, eo);
    if (!o->save_outputs.empty()) save_outputs(o->save_outputs, names, r);
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
    if (o->g.json) {
      nlohmann::json j = eval_json(r, metric_req, o->model, o->data, o->reference);
      j["isa"] = kernels::isa_name(m.isa());
      j["threads"] = mo.threads;
      j["integer_layers"] = int_layers;
      j["layers"] = m.layer_paths().size();
      j["weight_bytes"] = weight_bytes;
      print_json(j);
    } else {
      char suffix[160];
      std::snprintf(suffix, sizeof suffix, ", %s, %d of %zu layers integer", kernels::isa_name(m.isa()), int_layers,
                    m.layer_paths().size());
      print_eval(r, o->model, *ds, o->reference, suffix);
      if (!o->save_outputs.empty()) std::printf("wrote %s\n", o->save_outputs.c_str());
    }
    return 0;
  };
}

}  // namespace mixq::cli
