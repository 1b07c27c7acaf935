// The pieces of the extension `mixq._mixq`, one file each: errors.cpp (exception mapping),
// jobs.cpp (quantize, pareto, plan_from_table, eval, pack, run), runtime_py.cpp (the .mxq runtime),
// inspect_py.cpp (info, supported_ops, bench).
#pragma once

#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <vector>

#include "core/interrupt.h"
#include "core/progress.h"

namespace mixq::py {

namespace pyb = pybind11;

void register_errors(pyb::module_& m);
void register_jobs(pyb::module_& m);
void register_runtime(pyb::module_& m);
void register_inspect(pyb::module_& m);

// What every long call does around its work: Ctrl-C / SIGTERM handled at the job's safe points
// (on the main thread only), progress to `progress` (a callable (label, unit, done, total,
// seconds, final) or None: stderr bars as the CLI draws them) and the GIL released.
class JobScope {
 public:
  JobScope(const pyb::object& progress, bool handle_signals);
  ~JobScope();

 private:
  std::optional<ScopedInterruptHandler> signals_;
  bool had_sink_ = false;
};

}  // namespace mixq::py
