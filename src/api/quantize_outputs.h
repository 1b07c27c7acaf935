// The files a quantize job writes (QDQ ONNX, plan, JSON and HTML reports, packed .mxq), written
// the same way for `mixq quantize` and `mixq.quantize(...)`: checked before any work (never over
// the input model; SPARQ has no file form), written atomically after the last safe point, the
// reconstruction checkpoint removed once they all exist.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace mixq {

struct QuantizeJob;
struct QuantizeResult;

struct QuantizeOutputs {
  std::string onnx;         // -o: QDQ ONNX
  std::string plan;         // --plan-out
  std::string report;       // --report (JSON)
  std::string report_html;  // --report-html
  std::string pack;         // --pack (.mxq)
};

// Before the work: refuses outputs that name the input model or that cannot hold the plan (SPARQ),
// asks the job for the HTML report's data, and places the reconstruction checkpoint.
void prepare_quantize_outputs(QuantizeJob& job, const QuantizeOutputs& out);

// After the work: writes every requested file and returns the `--json` report (with "pack" when a
// .mxq was written). Throws Interrupted first when a signal arrived (nothing is written then).
nlohmann::json write_quantize_outputs(const QuantizeJob& job, const QuantizeResult& r, const QuantizeOutputs& out);

// The QDQ ONNX of a result (refused for SPARQ activations, which QDQ cannot express).
void save_qdq_onnx(const QuantizeResult& r, const std::string& path);

}  // namespace mixq
