// Ctrl-C for long optimisation loops: the first SIGINT sets a flag that reconstruction loops
// poll (they stop at the next iteration, finish the unit they are in with hard rounding, keep
// the rest as initialised, and the job still writes consistent outputs); the handler then
// restores the default action, so a second Ctrl-C ends the process at once. Outputs are written
// atomically either way (core/atomic_file.h).
#pragma once

namespace mixq {

void install_interrupt_handler();  // idempotent
bool interrupted();

}  // namespace mixq
