// The job behind `mixq pack` and `mixq.pack(...)`: quantize with a plan or a search (calibrating on
// the job's calibration data), then store every layer at its real bit-width in a .mxq file for the
// runtime; or, with float_model, the prepared float model (BatchNorm folded, nothing quantized):
// the runtime's fp32 baseline.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace mixq {

struct QuantizeJob;

struct PackOutputs {
  std::string path;          // -o: the .mxq to write
  bool float_model = false;  // --float
};

// `calib_given`: whether the user named calibration data (without it a float pack reads one
// Fashion-MNIST image for the input shapes). Returns api/write_packed.h's size report plus
// avg_wbits and, with job.eval, top1_sim (the fake-quant simulation's top-1).
nlohmann::json run_pack(QuantizeJob job, const PackOutputs& out, bool calib_given);

}  // namespace mixq
