// mixq pack MODEL --plan PLAN -o model.mxq: quantize with a plan (calibrating on --calib), then
// store every layer at its real bit-width in a .mxq file for the runtime (`mixq run`, `mixq bench`).
// The file's size is reported against the plan's predicted size_bytes, part by part.
#include <cstdio>

#include "api/pack_job.h"
#include "api/quantize_job.h"
#include "common.h"

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
    PackOutputs out;
  };
  auto o = std::make_shared<Opts>();
  add_pack_options(sub, o->job, o->out);
  add_global_options(sub, o->g);
  CLI::Option* calib_opt = sub.get_option("--calib");
  return [o, calib_opt]() {
    apply_global_options(o->g);
    finish_quantize_options(o->job);
    o->job.qopts.progress = !o->g.quiet;
    const nlohmann::json j = run_pack(o->job, o->out, calib_opt->count() > 0);
    if (o->g.json) {
      print_json(j);
      return 0;
    }
    print_pack_summary(j);
    if (j.contains("top1_sim") && j["top1_sim"].is_number()) std::printf("top-1 of the fake-quant simulation %.2f%%\n", j["top1_sim"].get<double>());
    return 0;
  };
}

}  // namespace mixq::cli
