#include "mixq/error.h"

namespace mixq::detail {

void assert_fail(const char* expr, const char* file, int line, const std::string& msg) {
  throw Error(ErrorKind::kInternal, concat("internal error (a bug in mixq, please report it): ",
                                           "assertion '", expr, "' failed at ", file, ":", line,
                                           msg.empty() ? "" : ": ", msg));
}

}  // namespace mixq::detail
