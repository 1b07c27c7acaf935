#include "api/pack_job.h"

#include "api/checkpoint_files.h"
#include "api/quantize_job.h"
#include "api/write_packed.h"
#include "core/atomic_file.h"
#include "core/interrupt.h"
#include "mixq/error.h"

namespace mixq {

nlohmann::json run_pack(QuantizeJob job, const PackOutputs& out, bool calib_given) {
  MIXQ_CHECK(!out.path.empty(), ErrorKind::kInvalidArgument, "pack needs an output file (-o)");
  MIXQ_CHECK(!same_file(out.path, job.model_path), ErrorKind::kInvalidArgument, "refusing to overwrite the input model '",
             job.model_path, "' with ", out.path);
  if (out.float_model) {
    // The plan/calibration result is discarded below; the data only gives the input shapes, so
    // one Fashion-MNIST image unless the user named data of the model's own (not images).
    if (!calib_given) job.calib = "fmnist:train:1";
    job.eval.clear();
  }
  prepare_checkpoint(job, {&out.path});
  QuantizeResult r = run_quantize(job);
  throw_if_interrupted();  // the last safe point before the file is written
  if (out.float_model) {
    r.qmodel.graph = r.prepared;
    r.qmodel.weights.clear();
    r.qmodel.activations.clear();
    r.plan.cost.size_bytes = r.plan.cost.float_bytes;
  }
  nlohmann::json j = write_packed(r, out.path);
  finish_checkpoint(job);
  if (r.quant_eval) j["top1_sim"] = r.quant_eval->top1;
  j["avg_wbits"] = r.plan.cost.avg_wbits;
  return j;
}

}  // namespace mixq
