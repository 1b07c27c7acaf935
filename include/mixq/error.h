// Errors at mixq's boundaries.
//
// User-facing problems (a malformed model, an unsupported operator, bad data, a bad plan or CLI
// argument) are reported by throwing mixq::Error with one message that names the file / node /
// tensor involved and says what to do. The CLI prints it as "error: <message>" and exits non-zero.
// Internal invariants use MIXQ_ASSERT: a failure there is a bug in mixq, not in the input.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace mixq {

// What kind of input was wrong; the CLI maps it to an exit code.
enum class ErrorKind {
  kInvalidArgument = 2,  // CLI flags, plan contents
  kInvalidModel = 3,     // unreadable/corrupt/ill-formed model
  kUnsupported = 4,      // valid ONNX that mixq cannot run (op, opset, dtype)
  kInvalidData = 5,      // dataset missing, empty, wrong shape/dtype
  kRuntime = 6,          // an op failed while running (shape mismatch discovered at run time)
  kIO = 7,               // cannot read/write a file
  kInternal = 70,        // a bug in mixq
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }
  int exit_code() const { return static_cast<int>(kind_); }

 private:
  ErrorKind kind_;
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
[[noreturn]] void assert_fail(const char* expr, const char* file, int line, const std::string& msg);
}  // namespace detail

// Throws mixq::Error(kind, concat(args...)) when cond is false. For user input.
#define MIXQ_CHECK(cond, kind, ...)                                                  \
  do {                                                                               \
    if (!(cond)) throw ::mixq::Error((kind), ::mixq::detail::concat(__VA_ARGS__));   \
  } while (0)

// Internal invariant: a failure is a mixq bug.
#define MIXQ_ASSERT(cond, ...)                                                              \
  do {                                                                                      \
    if (!(cond))                                                                            \
      ::mixq::detail::assert_fail(#cond, __FILE__, __LINE__, ::mixq::detail::concat("", ##__VA_ARGS__)); \
  } while (0)

}  // namespace mixq
