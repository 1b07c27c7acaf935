// mixq pack MODEL --plan PLAN -o model.mxq: quantize with a plan (calibrating on --calib), then
// store every layer at its real bit-width in a .mxq file for the runtime (`mixq run`, `mixq bench`).
// The file's size is reported against the plan's predicted size_bytes, part by part.
#include <cstdio>

#include "api/quantize_job.h"
#include "api/write_packed.h"
#include "common.h"
#include "core/atomic_file.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "pack/from_qmodel.h"
#include "runtime/ops.h"

namespace mixq::cli {

void print_pack_summary(const nlohmann::json& j) {
  std::printf("wrote %s: %lld bytes; plan predicted %lld (file/predicted %.4f; weights+params+tensors %lld = "
              "%.4f of predicted, graph %lld + header %lld)\n",
              j["path"].get<std::string>().c_str(), (long long)j["file_bytes"].get<int64_t>(),
              (long long)j["predicted_bytes"].get<int64_t>(), j["ratio_to_predicted"].get<double>(),
              (long long)j["payload_bytes"].get<int64_t>(), j["payload_ratio_to_predicted"].get<double>(),
              (long long)j["graph_bytes"].get<int64_t>(), (long long)j["header_bytes"].get<int64_t>());
}

RunFn setup_pack(CLI::App& sub) {
  struct Opts {
    GlobalOptions g;
    QuantizeJob job;
    std::string out;
    bool float_model = false;
  };
  auto o = std::make_shared<Opts>();
  o->job.defaults.wbits = 4;
  o->job.eval_float = false;
  sub.add_option("model", o->job.model_path, "Float ONNX model")->required();
  add_quant_options(sub, o->job);
  sub.add_option("--plan", o->job.plan_path, "QuantPlan (JSON) to apply (else --wbits/--abits/--search as quantize)");
  sub.add_option("--eval", o->job.eval, "Also evaluate the fake-quant simulation on this dataset");
  sub.add_option("-o,--output", o->out, "The .mxq file to write")->required();
  sub.add_flag("--float", o->float_model,
               "Pack the prepared float model (BatchNorm folded, nothing quantized): the runtime's fp32 baseline");
  add_global_options(sub, o->g);
  CLI::Option* calib_opt = sub.get_option("--calib");
  return [o, calib_opt]() {
    apply_global_options(o->g);
    QuantizeJob& job = o->job;
    finish_quantize_options(job);
    job.qopts.progress = !o->g.quiet;
    MIXQ_CHECK(!same_file(o->out, job.model_path), ErrorKind::kInvalidArgument, "refusing to overwrite the input model '",
               job.model_path, "' with ", o->out);
    if (o->float_model) {
      // The plan/calibration result is discarded below; the data only gives the input shapes, so
      // one Fashion-MNIST image unless the user named data of the model's own (not images).
      if (calib_opt->count() == 0) job.calib = "fmnist:train:1";
      job.eval.clear();
    }
    prepare_checkpoint(job, {&o->out});
    QuantizeResult r = run_quantize(job);
    throw_if_interrupted();  // the last safe point before the file is written
    if (o->float_model) {
      r.qmodel.graph = r.prepared;
      r.qmodel.weights.clear();
      r.qmodel.activations.clear();
      r.plan.cost.size_bytes = r.plan.cost.float_bytes;
    }
    nlohmann::json j = write_packed(r, o->out);
    finish_checkpoint(job);
    if (r.quant_eval) j["top1_sim"] = r.quant_eval->top1;
    j["avg_wbits"] = r.plan.cost.avg_wbits;
    if (o->g.json) {
      print_json(j);
      return 0;
    }
    print_pack_summary(j);
    if (r.quant_eval) std::printf("top-1 of the fake-quant simulation %.2f%%\n", r.quant_eval->top1);
    return 0;
  };
}

}  // namespace mixq::cli
