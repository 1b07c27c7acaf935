// The HTML report of `quantize --report-html` and `pareto --report-html`: one self-contained file
// (styles and the small hover script inline, no network), readable without JavaScript (the charts
// are SVG, each mark with a <title> that browsers show on hover), with a tooltip and highlighting
// when scripts run. Sections, each present when its data is:
//   - summary and settings (tables),
//   - the front: predicted loss increase vs model size, every point of the front, the chosen plan
//     marked (quantize),
//   - bits per layer over the network in order (weights as bars, activations as ticks),
//   - the sensitivity table as a heatmap (layers x candidate bits, log colour scale),
//   - predicted vs measured loss increase of the chosen plan.
// Input: one JSON object (the fields below); the renderer never reads files.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "search/sensitivity.h"

namespace mixq {

// {"title": str, "summary": {key: value}, "settings": {key: value},
//  "layers": [{"name", "op", "wbits", "abits" (0: float input), "params", "macs", "pinned"}],
//  "front": [front points (api/front.h)], "chosen": {"size_bytes", "avg_wbits", "predicted_dl"},
//  "sensitivity": sensitivity_matrix(...), "predicted_vs_measured": {"predicted_dl", "measured_dl"}}
std::string render_report_html(const nlohmann::json& report);

// The table's layers x weight-bit candidates under one signal: {"signal", "candidates": [bits],
// "layers": [names], "values": [[value or null]]} (ref_bits entries are 0).
nlohmann::json sensitivity_matrix(const SensitivityTable& t, const std::string& signal);

}  // namespace mixq
