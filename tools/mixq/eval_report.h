// The terminal lines of an evaluation, shared by `eval` (executor) and `run` (packed runtime); the
// reference choice and the JSON fields are in api/eval_report.h.
#pragma once

#include <string>

#include "api/eval_report.h"

namespace mixq::cli {

// "MODEL on DATA: top-1 ..." (or samples and speed without top-1) + `suffix`, then the reference's
// top-1 and the fidelity lines.
void print_eval(const EvalResult& r, const std::string& model, const Dataset& data, const std::string& reference,
                const std::string& suffix = "");

}  // namespace mixq::cli
