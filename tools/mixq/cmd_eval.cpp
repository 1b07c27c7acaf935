// mixq eval MODEL --data SPEC: runs the model on a dataset. Top-1 and cross-entropy where the data
// has labels and the first output is [batch, classes]; with --reference (a float .onnx run on the
// same inputs, or an .npz of stored outputs such as ONNX Runtime's) the fidelity of every output
// (SQNR, cosine, max error, KL, top-1 agreement); --save-outputs writes every output. No labels
// are needed for anything but top-1.
#include <cstdio>

#include "api/eval_job.h"
#include "common.h"
#include "eval_report.h"

namespace mixq::cli {

RunFn setup_eval(CLI::App& sub) {
  struct Opts {
    GlobalOptions g;
    EvalJob job;
  };
  auto o = std::make_shared<Opts>();
  add_eval_options(sub, o->job);
  add_global_options(sub, o->g);
  return [o]() {
    apply_global_options(o->g);
    const EvalJob& job = o->job;
    EvalJobResult r = run_eval(job, !o->g.quiet);
    if (o->g.json) {
      print_json(r.json);
    } else {
      print_eval(r.result, job.model, *r.data, job.reference);
      for (const std::string* p : {&job.save_logits, &job.save_outputs})
        if (!p->empty()) std::printf("wrote %s\n", p->c_str());
    }
    return 0;
  };
}

}  // namespace mixq::cli
