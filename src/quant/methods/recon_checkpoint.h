// Resumable reconstruction (AdaRound, BRECQ, AdaQuant): after every finished unit the method
// records what that unit produced (its layers' integer codes, learned activation steps, ...), the
// report entries so far and the state of its random generator, and the whole checkpoint is
// rewritten atomically (core/atomic_file.h). A rerun of the same command replays the finished
// units from the file (no optimisation), restores the generator and continues with the next
// unit, so the result is bit-identical to an uninterrupted run: the only randomness is that
// generator, and a unit's cached inputs depend only on the units before it.
//
// The file (CBOR) carries a key: a hash of the prepared model's weights, the plan, the quantized
// model the method starts from (which covers the calibration data's effect), the data spec and
// every method setting that changes results. A checkpoint with another key is refused with a
// message (never silently mixed in); --no-resume starts over and overwrites it.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <map>
#include <string>

#include "quant/methods/method.h"

namespace mixq {

class ReconCheckpoint {
 public:
  // `method` names the method (part of the key); `settings` are the method's result-changing
  // options as JSON (also part of the key). Opens ctx.opts.checkpoint when ctx.opts.resume and
  // the file exists; throws kInvalidArgument for a checkpoint of another job, kIO for a file that
  // cannot be read or is not a mixq checkpoint. Disabled (every call a no-op) when the path is "".
  ReconCheckpoint(const MethodContext& ctx, const std::string& method, const nlohmann::json& settings);

  bool enabled() const { return !path_.empty(); }
  bool resumed() const { return resumed_; }
  // Units of `phase` ("weights", "acts", ...) finished: indices [0, next) of the method's unit list.
  int64_t next(const std::string& phase) const;
  // The report entries recorded for `phase` (an array; empty when none).
  nlohmann::json reports(const std::string& phase) const;
  // A tensor saved by record(); throws kIO naming the checkpoint when it is missing.
  at::Tensor tensor(const std::string& name) const;
  // Sets `gen` to the state at the last record (call before the first non-replayed unit).
  void restore_generator(at::Generator& gen) const;

  // After unit `next - 1` of `phase`: keeps `tensors` (added to those saved before), the phase's
  // report entries so far and the generator state, and rewrites the file atomically.
  void record(const std::string& phase, int64_t next, const std::map<std::string, at::Tensor>& tensors,
              const nlohmann::json& reports, const at::Generator& gen);

 private:
  std::string path_;
  std::string key_;
  bool resumed_ = false;
  nlohmann::json state_;
};

// A tensor as the checkpoint stores it (dtype code, shape, raw bytes), also the form in which an
// MPI rank sends a finished unit to rank 0 (dist/dist.h). tensor_from_json checks the bytes
// against the declared shape before allocating; `where` names the source in its errors.
nlohmann::json tensor_to_json(const at::Tensor& t);
at::Tensor tensor_from_json(const nlohmann::json& j, const std::string& where, const std::string& name);

}  // namespace mixq
