// `mixq profile MODEL.mxq`: where the packed runtime's time goes, per node, with the arithmetic
// rate each layer reached and how far it is from this core's measured peak (kernels/peak.h).
#pragma once

#include <string>

#include "runtime/runtime.h"

namespace mixq::cli {

struct PackedProfileOptions {
  std::string model, data = "fmnist:test:64", out;
  int batch = 1, runs = 100;
  bool json = false;
};

// Prints the table (or the JSON object with --json); writes the JSON to `out` when set. Returns the
// exit code.
int profile_packed(const PackedProfileOptions& o, const rt::ModelOptions& mo);

}  // namespace mixq::cli
