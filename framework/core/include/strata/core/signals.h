// Stop requests from signals (SIGTERM, SIGUSR1: Slurm preemption and time limits).
//
// The handler only sets a flag (async-signal-safe); the training loop polls it at step
// boundaries and, since signals reach ranks at different moments, agrees on it across
// ranks with a collective (comm::World::any_rank) before it acts. Signal dispositions
// are process-wide by nature: install once, from `main` or the trainer.
#pragma once

#include <initializer_list>
#include <string_view>
#include <vector>

namespace strata::core {

class StopSignals {
 public:
  // Installs the flag-setting handler for `signals` (default SIGTERM, SIGUSR1 and
  // SIGINT). A second SIGINT (Ctrl-C pressed again) ends the process at once, with the
  // default action; other signals only set the flag.
  static void install();
  static void install(std::initializer_list<int> signals);
  static void install(const std::vector<int>& signals);
  // The first signal received since install()/reset(), or 0.
  static int received();
  static void reset();
  // Simulates delivery (tests): same effect as the signal arriving.
  static void raise_for_test(int signal);
};

// "SIGTERM", "SIGUSR1", ... for messages.
const char* signal_name(int signal);
// The number of a stop signal's name ("SIGTERM", "SIGUSR1", "SIGUSR2", "SIGINT",
// "SIGHUP"), or 0 when it names none of them.
int signal_number(std::string_view name);

}  // namespace strata::core
