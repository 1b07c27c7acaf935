// The allocation stage of a quantization job: hardware spec, sensitivity table (measured, cached
// or loaded), the allocator's context (measurement on the calibration subset), the spec check of
// the result and, for table-driven searches, the predicted vs measured check.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/calib_sampling.h"
#include "data/dataset.h"
#include "graph/ir.h"
#include "quant/plan.h"
#include "search/allocator.h"
#include "search/sensitivity.h"

namespace mixq {

struct AllocateStep {
  std::string search = "uniform";
  SearchOptions opts;
  std::string hw_path;         // hardware spec file ("" : none)
  std::string table_path;      // use this sensitivity table instead of measuring ("" : measure)
  SensitivityOptions sens;     // samples, batch, cache file, calib spec, model path
  bool progress = true;
  Graph* tune = nullptr;       // AllocContext::tune
  std::function<std::unique_ptr<Dataset>(const std::string& spec)> open_data;  // AllocContext::open_data
  // Non-null: where a table-driven search used a sensitivity table, the HTML report's data goes
  // here: "front" (api/front.h) and "sensitivity" (the layers x bits matrix of the signal).
  nlohmann::json* report = nullptr;
};

// Runs the allocator on `plan` (from make_plan). `calib` may be null for data-free searches.
// Returns a summary for reports: table timing, predicted vs measured.
nlohmann::json run_allocation(const AllocateStep& step, const Graph& prepared, QuantPlan& plan, const Dataset* calib);

// Measures a plan on (the first n samples of) a dataset: quantize, simulate, {top-1 %, loss}.
std::pair<double, double> measure_plan(const Graph& prepared, const QuantPlan& plan, const Dataset& data);

}  // namespace mixq

namespace mixq {

// Load -> fold BN -> layers with MACs -> plan with the job's defaults (what run_quantize does
// before allocation), for the commands that allocate without quantizing (pareto, plan).
// With a calibration spec, the data is opened (preprocessing from the model's metadata under the
// overrides) and its first sample gives the shapes of dynamic axes (--input-shape wins).
struct PlanData {
  std::string calib;                       // "" : no data
  PreprocessOverride preprocess;
  std::vector<std::string> input_shapes;   // --input-shape specs
  CalibSampling sampling;                  // which samples of `calib` (data/calib_sampling.h)
};
struct PreparedPlan {
  Graph original, prepared;
  QuantPlan plan;
  std::unique_ptr<Dataset> calib;          // when PlanData::calib is set
};
PreparedPlan prepare_plan(const std::string& model_path, PlanDefaults defaults, const std::string& method,
                          const PlanData& data = {});

}  // namespace mixq
