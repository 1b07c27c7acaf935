// The extension `mixq._mixq` behind the Python package (python/mixq/, docs/python.md).
#include "core/malloc_tuning.h"
#include "core/runtime_env.h"
#include "module.h"

PYBIND11_MODULE(_mixq, m) {
  m.doc() = "mixq's C++ library (use the `mixq` package, not this module)";
  mixq::tune_malloc_for_tensors();  // as `mixq` does at start (core/malloc_tuning.h)
  mixq::py::register_errors(m);
  mixq::py::register_jobs(m);
  mixq::py::register_runtime(m);
  mixq::py::register_inspect(m);
  m.def("runtime_env_changes", []() { return std::string(mixq::runtime_env_changes()); },
        "Environment variables `mixq` would set for OpenBLAS / libgomp on this machine (core/runtime_env.h)");
  m.attr("__version__") = "0.1.0";
}
