// Stop requests from signals (SIGTERM, SIGUSR1: Slurm preemption and time limits).
//
// The handler only sets a flag (async-signal-safe); the training loop polls it at step
// boundaries and, since signals reach ranks at different moments, agrees on it across
// ranks with a collective (comm::World::any_rank) before it acts. Signal dispositions
// are process-wide by nature: install once, from `main` or the trainer.
#pragma once

#include <initializer_list>

namespace strata::core {

class StopSignals {
 public:
  // Installs the flag-setting handler for `signals` (default SIGTERM and SIGUSR1).
  static void install();
  static void install(std::initializer_list<int> signals);
  // The first signal received since install()/reset(), or 0.
  static int received();
  static void reset();
  // Simulates delivery (tests): same effect as the signal arriving.
  static void raise_for_test(int signal);
};

// "SIGTERM", "SIGUSR1", ... for messages.
const char* signal_name(int signal);

}  // namespace strata::core
