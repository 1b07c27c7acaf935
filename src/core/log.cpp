#include "core/log.h"

#include <atomic>
#include <cstdio>

namespace mixq::log {
namespace {
std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::atomic<bool> g_warn{true};
}

void set_level(Level l) { g_level = static_cast<int>(l); }
Level level() { return static_cast<Level>(g_level.load()); }

void info(const std::string& msg) {
  if (g_level >= static_cast<int>(Level::kInfo)) std::fprintf(stderr, "%s\n", msg.c_str());
}
void verbose(const std::string& msg) {
  if (g_level >= static_cast<int>(Level::kVerbose)) std::fprintf(stderr, "%s\n", msg.c_str());
}
void warn(const std::string& msg) {
  if (g_warn) std::fprintf(stderr, "warning: %s\n", msg.c_str());
}
void set_warnings(bool on) { g_warn = on; }

}  // namespace mixq::log
