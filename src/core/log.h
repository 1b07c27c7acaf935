// Human-readable logging to stderr. stdout is reserved for results (and the single JSON object
// that --json prints), so nothing here ever writes to stdout.
#pragma once

#include <string>

namespace mixq::log {

enum class Level { kQuiet = 0, kInfo = 1, kVerbose = 2 };

void set_level(Level level);
Level level();

void info(const std::string& msg);     // shown unless --quiet
void verbose(const std::string& msg);  // shown with --verbose (dispatch reasons, timings)
void warn(const std::string& msg);     // shown unless muted, prefixed "warning: "
// Off on an MPI worker rank: rank 0 prints the same warnings once (dist/dist.h).
void set_warnings(bool on);

}  // namespace mixq::log
