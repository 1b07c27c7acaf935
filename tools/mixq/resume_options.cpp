// --checkpoint / --resume / --no-resume and where a job's reconstruction checkpoint lives;
// --max-memory, the limit on cached activations (docs/reliability.md).
#include <filesystem>

#include "api/quantize_job.h"
#include "common.h"
#include "core/atomic_file.h"
#include "core/log.h"
#include "mixq/error.h"

namespace mixq::cli {

void add_resume_options(CLI::App& sub, QuantizeJob& job) {
  sub.add_option("--checkpoint", job.recon.checkpoint,
                 "adaround / brecq / adaquant: progress file rewritten after every unit, so an interrupted run "
                 "(Ctrl-C, SIGTERM, a kill) resumes there (default: the first output file + '.ckpt'; removed once "
                 "the outputs are written)");
  sub.add_flag_function(
      "--resume", [&job](int64_t) { job.recon.resume = job.sens.resume = true; },
      "Continue from an existing --checkpoint / --sens-cache / --table-out file (the default)");
  sub.add_flag_function(
      "--no-resume", [&job](int64_t) { job.recon.resume = job.sens.resume = false; },
      "Start over: ignore (and overwrite) an existing --checkpoint / --sens-cache / --table-out file");
  sub.add_option_function<int64_t>(
         "--max-memory",
         [&job](int64_t mb) {
           job.recon.cache_mb = mb;          // reconstruction caches: the rest spills to --cache-dir
           job.sens.max_memory_mb = mb;      // the sensitivity probe cannot spill: refused above it
         },
         "MB of cached activations held in memory: reconstruction caches spill the rest to a file in --cache-dir "
         "(as --cache-mb); the sensitivity probe, which cannot spill, refuses to start above it")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 40));
}

void prepare_checkpoint(QuantizeJob& job, std::initializer_list<const std::string*> outputs) {
  const MethodRow& m = find_method(job.method);
  if (!m.checkpoints) {
    job.recon.checkpoint.clear();  // nothing to resume: the method has no units
    return;
  }
  if (job.recon.checkpoint.empty())
    for (const std::string* p : outputs)
      if (!p->empty()) {
        job.recon.checkpoint = *p + ".ckpt";  // next to the output it stands for
        break;
      }
  if (job.recon.checkpoint.empty()) {
    log::verbose("no output file and no --checkpoint: an interrupted " + job.method + " run starts over");
    return;
  }
  MIXQ_CHECK(!same_file(job.recon.checkpoint, job.model_path), ErrorKind::kInvalidArgument,
             "refusing to overwrite the input model '", job.model_path, "' with the checkpoint ", job.recon.checkpoint);
  for (const std::string* p : outputs)
    MIXQ_CHECK(p->empty() || !same_file(job.recon.checkpoint, *p), ErrorKind::kInvalidArgument, "--checkpoint ",
               job.recon.checkpoint, " is also an output file; give it a name of its own");
}

void finish_checkpoint(const QuantizeJob& job) {
  if (job.recon.checkpoint.empty()) return;
  std::error_code ec;
  std::filesystem::remove(job.recon.checkpoint, ec);  // the outputs are complete: nothing to resume
  remove_stale_temporaries(job.recon.checkpoint);     // what a SIGKILL mid-write left
}

}  // namespace mixq::cli
