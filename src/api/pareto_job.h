// The job behind `mixq pareto` and `mixq.pareto(...)`: the sensitivity table once (cached and
// resumable in `table`), then the size x BOPs x predicted-accuracy front (api/front.h), written
// as JSON and / or the HTML report.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace mixq {

struct QuantizeJob;

struct ParetoOutputs {
  std::string front;        // -o: the front (JSON)
  std::string table;        // --table-out: the sensitivity table (required: it is what resumes)
  std::string report_html;  // --report-html
  double grid_step = 0.25;  // --grid-step: average-bits step of the integer-program points
};

// Measures (or resumes) the table, computes the front, writes the requested files and returns
// {model, table, signal, sensitivity_seconds, samples, float_top1_calib, ref_top1_calib, points}.
nlohmann::json run_pareto(const QuantizeJob& job, const ParetoOutputs& out, bool progress);

}  // namespace mixq
