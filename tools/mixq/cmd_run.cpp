// mixq run model.mxq --data SPEC: runs a packed model on the libtorch-free runtime over a dataset,
// scored like `mixq eval`: top-1 where the data has labels and the first output is [batch, classes]
// scores; with --reference (the float .onnx run on the same inputs, or an .npz of stored outputs)
// the fidelity of every output. No labels needed.
#include <cstdio>

#include "api/run_job.h"
#include "common.h"
#include "eval_report.h"

namespace mixq::cli {

RunFn setup_run(CLI::App& sub) {
  struct Opts {
    GlobalOptions g;
    RunJob job;
  };
  auto o = std::make_shared<Opts>();
  add_run_options(sub, o->job);
  add_global_options(sub, o->g);
  return [o]() {
    apply_global_options(o->g);
    o->job.threads = o->g.threads;
    const RunJobResult r = run_packed(o->job, !o->g.quiet);
    if (o->g.verbose)
      for (const auto& p : r.layers)
        std::fprintf(stderr, "layer %s (%s): %s%s, kernel %s, %lld weight bytes held\n", p.node.c_str(), p.op.c_str(),
                     p.int_path ? "integer" : "float: ", p.int_path ? "" : p.why_float.c_str(), p.kernel.c_str(),
                     (long long)p.weight_bytes);
    if (o->g.json) {
      print_json(r.json);
    } else {
      char suffix[160];
      std::snprintf(suffix, sizeof suffix, ", %s, %d of %zu layers integer", r.json["isa"].get<std::string>().c_str(),
                    r.json["integer_layers"].get<int>(), r.layers.size());
      print_eval(r.result, o->job.model, *r.data, o->job.reference, suffix);
      if (!o->job.save_outputs.empty()) std::printf("wrote %s\n", o->job.save_outputs.c_str());
    }
    return 0;
  };
}

}  // namespace mixq::cli
