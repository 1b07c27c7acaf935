// The default end-to-end job on the bundled fixtures (`mixq demo`): for every model in
// models/fixtures.json, the float accuracy (checked against PyTorch's, recorded when the fixture
// was made), then uniform W8A8, uniform W4A8, MixQuant at a 4-bit weight average and the integer
// program over the measured sensitivity table at a 3.5-bit average (all with the chosen range
// method, per-channel weights, first/last layer at 8 bits), with size and time.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

namespace mixq {

struct DemoOptions {
  std::string models;                   // directory with fixtures.json and the .onnx fixtures
  std::string data = "fmnist:test";     // evaluation set
  std::string calib = "fmnist:train:1024";
  std::string method = "mse";           // range method of the quantized rows
  std::vector<std::string> only;        // run only these fixtures ("" : all)
  bool float_only = false;
  bool progress = true;
};

// Runs the demo; `on_row` sees each row as it finishes (float rows: model, config "float", top1,
// top1_pytorch, matches_pytorch, seconds; quantized rows: top1, drop, avg_wbits, size_bytes,
// size_ratio, seconds; or error). Returns {data, calib, method, rows, float_matches_pytorch}.
nlohmann::json run_demo(const DemoOptions& o, const std::function<void(const nlohmann::json&)>& on_row = {});

}  // namespace mixq
