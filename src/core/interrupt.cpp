#include "core/interrupt.h"

#include <atomic>
#include <csignal>

namespace mixq {

namespace {
std::atomic<bool> g_interrupted{false};
std::atomic<bool> g_installed{false};

extern "C" void on_sigint(int) {
  g_interrupted.store(true);
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C terminates
}
}  // namespace

void install_interrupt_handler() {
  if (g_installed.exchange(true)) return;
  std::signal(SIGINT, on_sigint);
}

bool interrupted() { return g_interrupted.load(); }

}  // namespace mixq
