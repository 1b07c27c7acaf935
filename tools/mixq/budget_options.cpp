// Budget, signal, hardware-spec and sensitivity-table options shared by quantize, pareto and plan.
#include <sstream>

#include "api/quantize_job.h"
#include "common.h"

namespace mixq::cli {

namespace {

// "4,8" -> {4, 8}; anything else is a usage error naming the option.
std::vector<int64_t> split_list(const std::string& v, const char* option) {
  std::vector<int64_t> out;
  std::stringstream ss(v);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      out.push_back(std::stoll(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw CLI::ValidationError(option, "'" + v + "' is not a comma-separated list of integers");
    }
  }
  return out;
}

}  // namespace

void add_budget_options(CLI::App& sub, QuantizeJob& job) {
  auto& o = job.search_opts;
  sub.add_option("--budget-bytes", o.budget.bytes, "Size budget in bytes (every stored bit, as size_bytes)");
  sub.add_option("--budget-bops", o.budget.bops, "BOPs budget per sample (MACs x weight bits x activation bits)");
  sub.add_option("--budget-latency-ms", o.budget.latency_ms, "Latency budget (needs --latency-table)");
  sub.add_option("--latency-table", o.latency_table, "Per-layer latency table JSON (docs/hwspec.md)");
  sub.add_option("--max-drop", o.budget.max_drop,
                 "ip/pareto/genetic: smallest plan whose predicted signal increase is at most this (dl: the "
                 "calibration loss increase; without labels or class scores dl is the relative output noise vs "
                 "the float model, so 0.01 ~ 20 dB SQNR); hago: allowed calibration top-1 drop in points");
  sub.add_option("--signal", o.signal,
                 "Sensitivity signal for ip/pareto/genetic: auto (kl with labelled class scores, else noise), dl, kl, "
                 "noise, mse, dacc, fisher, hessian")
      ->check(CLI::IsMember({"auto", "dl", "kl", "noise", "sqnr", "mse", "dacc", "fisher", "hessian"}))->capture_default_str();
  sub.add_option("--hw", job.hw_path, "Hardware spec JSON: allowed bits per op, shared groups (docs/hwspec.md)");
  sub.add_option("--sens-samples", job.sens.samples, "Calibration samples for the sensitivity table")
      ->capture_default_str();
  sub.add_option_function<std::string>(
      "--sens-bits",
      [&job](const std::string& v) {
        job.sens.bits.clear();
        for (const auto& x : split_list(v, "--sens-bits")) job.sens.bits.push_back(static_cast<int>(x));
      },
      "Sensitivity table: candidate weight bits, comma-separated (default 2,3,4,5,6,7,8)");
  sub.add_option("--sens-cache", job.sens.cache_path, "Sensitivity table cache file (resumes a killed run)");
  sub.add_option_function<std::string>(
         "--act-candidates",
         [&job](const std::string& v) {
           job.sens.act_bits.clear();
           if (v != "none")
             for (const auto& x : split_list(v, "--act-candidates")) job.sens.act_bits.push_back(static_cast<int>(x));
         },
         "Sensitivity table: activation bits measured per tensor below --abits, comma-separated, or 'none' "
         "(used by BOPs budgets; default 4,8)");
  sub.add_option_function<std::string>(
      "--group-candidates", [&job](const std::string& v) { job.sens.group_sizes = split_list(v, "--group-candidates"); },
      "Sensitivity table: per-group weight granularities measured at every candidate bit-width, comma-separated "
      "(e.g. 32,128; allocators pick them where they pay for their scales; default none)");
  sub.add_flag("--curvature", job.sens.curvature,
               "Sensitivity table: also the fisher and hessian signals (autograd pass; slow on convnets)");
  sub.add_option("--table", job.table_path, "Allocate from this sensitivity table instead of measuring");
  sub.add_flag("--no-measure", [&o](int64_t) { o.measure = false; }, "pareto: trust the prediction, skip re-measuring");
  sub.add_option("--additivity-tol", o.additivity_tol,
                 "ip/genetic: re-measure in-block layer pairs and re-solve when the plan's measured signal differs "
                 "from the predicted sum by more than this fraction (negative: no check)")
      ->capture_default_str();
  sub.add_option("--repair-rounds", o.repair_rounds, "ip/genetic: re-solves of the additivity repair (0: check only)")
      ->capture_default_str()
      ->check(CLI::Range(0, 20));
}

}  // namespace mixq::cli
