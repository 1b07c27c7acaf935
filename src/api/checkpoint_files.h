// Where a job's reconstruction checkpoint lives, and its removal once the outputs are written
// (docs/reliability.md, "Interrupts and resume").
#pragma once

#include <initializer_list>
#include <string>

namespace mixq {

struct QuantizeJob;

// Resolves job.recon.checkpoint for a method that checkpoints (default: the first non-empty of
// `outputs` + ".ckpt"; cleared for other methods) and refuses one that is the model or an output.
void prepare_checkpoint(QuantizeJob& job, std::initializer_list<const std::string*> outputs);
// Removes the checkpoint once every output is written.
void finish_checkpoint(const QuantizeJob& job);

}  // namespace mixq
