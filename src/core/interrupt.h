// SIGINT (Ctrl-C) and SIGTERM for long jobs. The first signal only sets a flag; the work polls it
// at its safe points (between optimisation iterations, between sensitivity units, between
// calibration and evaluation batches, before writing outputs) and then throws Interrupted. The
// CLI catches that, prints one message and exits 128 + signal (130 for SIGINT, 143 for SIGTERM)
// WITHOUT writing its final outputs: a job that stopped early has not produced what was asked for,
// so it writes nothing rather than a model that silently differs from the requested one. What was
// finished is kept in the job's resume files (the sensitivity table, the reconstruction
// checkpoint, both written atomically after every unit), so the same command resumes there.
// The handler restores the default action, so a second Ctrl-C / SIGTERM ends the process at once
// (no output is half-written either way: core/atomic_file.h).
#pragma once

#include <string>

namespace mixq {

// Thrown at a safe point after a SIGINT / SIGTERM. Deliberately not a std::exception: no generic
// `catch (const std::exception&)` on the way up may turn it into an ordinary error.
struct Interrupted {
  int signal;  // SIGINT or SIGTERM
};

void install_interrupt_handler();  // idempotent; handles SIGINT and SIGTERM
bool interrupted();
int interrupt_signal();            // the first signal received (0: none)
// Throws Interrupted when a signal arrived: call at safe points only.
void throw_if_interrupted();

// For an embedding process (the Python module): handles SIGINT / SIGTERM as above while it lives,
// then puts the previous handlers back (Python's own) and clears the flag, so the next job starts
// clean. Install it on the main thread only (signals are delivered there in Python).
class ScopedInterruptHandler {
 public:
  ScopedInterruptHandler();
  ~ScopedInterruptHandler();
  ScopedInterruptHandler(const ScopedInterruptHandler&) = delete;
  ScopedInterruptHandler& operator=(const ScopedInterruptHandler&) = delete;

 private:
  struct Saved;
  Saved* saved_;
};

// What the CLI prints on an interrupt, so the user knows where progress lives: the last resume
// file a job saved ("" if none). Not thread-safe; set from the job's main thread.
void set_resume_note(const std::string& note);
const std::string& resume_note();

}  // namespace mixq
