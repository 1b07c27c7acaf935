// C++ exceptions -> the Python exception classes of mixq/errors.py: a mixq::Error becomes the
// subclass of mixq.Error for its kind (same message, `.code` = the CLI's exit code), an
// Interrupted (Ctrl-C / SIGTERM at a safe point) becomes mixq.Interrupted, a KeyboardInterrupt.
#include "module.h"

#include <csignal>

#include "core/interrupt.h"
#include "mixq/error.h"

namespace mixq::py {

namespace {

void set_error(const char* factory, int code, const std::string& message) {
  pyb::object errors = pyb::module_::import("mixq.errors");
  pyb::object exc = errors.attr(factory)(code, message);
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
}

}  // namespace

void register_errors(pyb::module_&) {
  pyb::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Interrupted& i) {
      set_error("interrupted", 128 + i.signal,
                std::string("interrupted (") + (i.signal == SIGTERM ? "SIGTERM" : "SIGINT") +
                    "): stopped at a safe point, no output written" +
                    (resume_note().empty() ? "" : "; " + resume_note()));
    } catch (const Error& e) {
      set_error("from_code", e.exit_code(), e.what());
    } catch (const pyb::error_already_set&) {
      throw;  // a Python exception (from a progress callback): pybind11 restores it
    } catch (const pyb::builtin_exception&) {
      throw;  // pybind11's own (a bad argument type): its translator maps it
    } catch (const std::exception& e) {
      set_error("from_code", 1, e.what());  // what `mixq` reports as "error: ..." with exit 1
    }
  });
}

}  // namespace mixq::py
