#include "api/checkpoint_files.h"

#include <filesystem>

#include "api/quantize_job.h"
#include "core/atomic_file.h"
#include "core/log.h"
#include "mixq/error.h"

namespace mixq {

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

}  // namespace mixq
