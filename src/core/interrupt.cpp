#include "core/interrupt.h"

#include <atomic>
#include <csignal>

namespace mixq {

namespace {
std::atomic<int> g_signal{0};
std::atomic<bool> g_installed{false};
std::string g_note;

extern "C" void on_signal(int sig) {
  int none = 0;
  g_signal.compare_exchange_strong(none, sig);
  // SA_RESETHAND already restored the default action of this signal: a second one kills at once.
}
}  // namespace

void install_interrupt_handler() {
  if (g_installed.exchange(true)) return;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  // SA_RESTART: system calls in progress (a write of an output file) continue instead of failing
  // with EINTR; SA_RESETHAND: the second signal gets the default action (terminate).
  sa.sa_flags = SA_RESTART | SA_RESETHAND;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

struct ScopedInterruptHandler::Saved {
  struct sigaction int_action, term_action;
};

ScopedInterruptHandler::ScopedInterruptHandler() : saved_(new Saved) {
  g_signal.store(0);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART | SA_RESETHAND;  // as install_interrupt_handler
  sigaction(SIGINT, &sa, &saved_->int_action);
  sigaction(SIGTERM, &sa, &saved_->term_action);
}

ScopedInterruptHandler::~ScopedInterruptHandler() {
  sigaction(SIGINT, &saved_->int_action, nullptr);
  sigaction(SIGTERM, &saved_->term_action, nullptr);
  g_signal.store(0);
  delete saved_;
}

bool interrupted() { return g_signal.load() != 0; }
int interrupt_signal() { return g_signal.load(); }

void throw_if_interrupted() {
  if (const int s = g_signal.load()) throw Interrupted{s};
}

void set_resume_note(const std::string& note) { g_note = note; }
const std::string& resume_note() { return g_note; }

}  // namespace mixq
