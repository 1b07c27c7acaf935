#include "api/run_job.h"

#include "api/eval_report.h"
#include "api/rt_data.h"
#include "exec/fidelity.h"

namespace mixq {

RunJobResult run_packed(const RunJob& job, bool progress) {
  const Metric metric_req = parse_metric(job.metric);
  const rt::ModelOptions mo = runtime_options(job.isa, job.threads);
  rt::Model m = rt::Model::load(job.model, mo);
  RunJobResult out;
  out.data = open_dataset_for(m.packed(), job.data, job.pre);
  std::vector<ValueInfo> outs;
  for (const auto& d : m.packed().outputs) {
    out.output_names.push_back(d.name);
    ValueInfo v;
    v.name = d.name;
    outs.push_back(v);
  }
  EvalOptions eo;
  eo.batch_size = job.batch;
  eo.progress = progress;
  eo.label = "run";
  eo.keep_outputs = job.keep_outputs || !job.save_outputs.empty();
  std::unique_ptr<Executor> ref_ex;
  set_reference(job.reference, outs, out.data->size(), eo, ref_ex);
  auto run = [&m](const std::vector<at::Tensor>& in) {
    Batch b;
    b.inputs = in;
    return from_runtime(m.run(to_runtime(b)));
  };
  out.result = evaluate(run, out.output_names, job.model, *out.data, eo);
  if (!job.save_outputs.empty()) save_outputs(job.save_outputs, out.output_names, out.result);
  out.layers = m.layer_paths();
  int int_layers = 0;
  int64_t weight_bytes = 0;
  for (const auto& p : out.layers) {
    int_layers += p.int_path;
    weight_bytes += p.weight_bytes;
  }
  out.json = eval_json(out.result, metric_req, job.model, job.data, job.reference);
  out.json["isa"] = kernels::isa_name(m.isa());
  out.json["threads"] = mo.threads;
  out.json["integer_layers"] = int_layers;
  out.json["layers"] = out.layers.size();
  out.json["weight_bytes"] = weight_bytes;
  return out;
}

}  // namespace mixq
