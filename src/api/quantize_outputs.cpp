#include "api/quantize_outputs.h"

#include "api/checkpoint_files.h"
#include "api/quantize_job.h"
#include "api/report_html.h"
#include "api/write_packed.h"
#include "core/atomic_file.h"
#include "core/interrupt.h"
#include "core/malloc_tuning.h"
#include "mixq/error.h"
#include "onnx/export.h"
#include "quant/qdq.h"

namespace mixq {

void prepare_quantize_outputs(QuantizeJob& job, const QuantizeOutputs& o) {
  job.report_data = !o.report_html.empty();
  for (const std::string* p : std::initializer_list<const std::string*>{&o.onnx, &o.plan, &o.report, &o.report_html,
                                                                      &o.pack, &job.save_outputs})
    MIXQ_CHECK(p->empty() || !same_file(*p, job.model_path), ErrorKind::kInvalidArgument,
               "refusing to overwrite the input model '", job.model_path, "' with ", *p);
  // SPARQ has no QDQ or packed form: fail before the work, not after it.
  MIXQ_CHECK(!job.defaults.act_sparq.enabled || (o.onnx.empty() && o.pack.empty()), ErrorKind::kUnsupported,
             "--act-scheme ", act_scheme_name(job.defaults.act_sparq), " cannot be written with ",
             o.onnx.empty() ? "--pack" : "-o", ": QDQ ONNX and the packed runtime cannot express SPARQ's per-value ",
             "windows (the file would run plain 8-bit activations); SPARQ is simulated only (use --eval)");
  MIXQ_CHECK(job.defaults.act_placement == ActPlacement::kInputs || o.pack.empty(), ErrorKind::kUnsupported,
             "--act-placement outputs cannot be packed (--pack): the packed runtime keeps residual paths float; "
             "use --act-placement inputs, or export QDQ ONNX (-o)");
  prepare_checkpoint(job, {&o.onnx, &o.pack, &o.plan, &o.report, &o.report_html, &job.save_outputs});
}

void save_qdq_onnx(const QuantizeResult& r, const std::string& path) {
  check_no_sparq(r.qmodel, "QDQ ONNX export (-o)");  // a --plan can ask for SPARQ too
  // The graph, its protobuf and the serialized bytes are whole-model buffers freed together: mapped,
  // they go back to the system instead of growing the heap past the job's peak (ViT-B's export
  // added up to 390 MB of RSS at the end of a quantize run).
  MappedTensorScope mapped;
  save_onnx(qdq_graph(r.qmodel), path);
}

nlohmann::json write_quantize_outputs(const QuantizeJob& job, const QuantizeResult& r, const QuantizeOutputs& o) {
  throw_if_interrupted();  // the last safe point: after it every output is written
  if (!o.onnx.empty()) save_qdq_onnx(r, o.onnx);
  if (!o.plan.empty()) save_plan(r.plan, o.plan);
  nlohmann::json rep = quantize_report(job, r);
  if (!o.pack.empty()) rep["pack"] = write_packed(r, o.pack);
  if (!o.report.empty()) write_file_atomic(o.report, rep.dump(2) + "\n");
  if (!o.report_html.empty()) write_file_atomic(o.report_html, render_report_html(quantize_report_view(rep, r)));
  finish_checkpoint(job);
  return rep;
}

}  // namespace mixq
