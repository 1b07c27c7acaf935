#include "api/eval_job.h"

#include "api/eval_report.h"
#include "core/atomic_file.h"
#include "core/log.h"
#include "data/npy.h"
#include "exec/fold_constants.h"
#include "exec/fidelity.h"
#include "mixq/error.h"

namespace mixq {

EvalJobResult run_eval(const EvalJob& job, bool progress) {
  const Metric metric_req = parse_metric(job.metric);
  for (const std::string* p : {&job.save_logits, &job.save_outputs})
    MIXQ_CHECK(p->empty() || !same_file(*p, job.model), ErrorKind::kInvalidArgument,
               "refusing to overwrite the input model '", job.model, "' with ", *p);
  Graph g = load_model(job.model);
  bool found = false;
  Preprocess pp = job.pre.over(preprocess_from_metadata(g, &found));
  EvalJobResult out;
  out.data = open_dataset(job.data, g.inputs, pp);
  if (!found && !job.pre.mean && job.data.rfind("fmnist:", 0) == 0)
    log::warn(job.model + " has no mixq.input_* metadata; using x = pixel/255 without normalization "
                          "(pass --mean/--std if the model was trained with them)");
  std::vector<ValueInfo> outputs = g.outputs;
  for (const auto& v : outputs) out.output_names.push_back(v.name);
  Executor ex(std::move(g));
  EvalOptions eo;
  eo.batch_size = job.batch;
  eo.progress = progress;
  eo.keep_outputs = job.keep_outputs || !job.save_logits.empty() || !job.save_outputs.empty();
  std::unique_ptr<Executor> ref_ex;
  set_reference(job.reference, outputs, out.data->size(), eo, ref_ex);
  out.result = evaluate(ex, *out.data, eo);
  if (!job.save_logits.empty()) save_npy(job.save_logits, out.result.outputs.at(0));
  if (!job.save_outputs.empty()) save_outputs(job.save_outputs, out.output_names, out.result);
  out.json = eval_json(out.result, metric_req, job.model, job.data, job.reference);
  return out;
}

}  // namespace mixq
