// Flag-only signal handlers for graceful stops (see signals.h).
#include "strata/core/signals.h"

#include <csignal>
#include <cstring>

namespace strata::core {
namespace {

volatile std::sig_atomic_t g_received = 0;

extern "C" void on_stop_signal(int signal) {
  if (g_received == 0) {
    g_received = signal;
    return;
  }
  if (signal == SIGINT) {  // impatient Ctrl-C: do what it would have done (async-signal-safe)
    std::signal(SIGINT, SIG_DFL);
    std::raise(SIGINT);
  }
}

}  // namespace

void StopSignals::install() { install({SIGTERM, SIGUSR1, SIGINT}); }

void StopSignals::install(std::initializer_list<int> signals) { install(std::vector<int>(signals)); }

void StopSignals::install(const std::vector<int>& signals) {
  struct sigaction action;
  std::memset(&action, 0, sizeof(action));
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // reads and waits in other threads carry on
  for (int s : signals) sigaction(s, &action, nullptr);
}

int StopSignals::received() { return g_received; }
void StopSignals::reset() { g_received = 0; }
void StopSignals::raise_for_test(int signal) { on_stop_signal(signal); }

int signal_number(std::string_view name) {
  if (name == "SIGTERM") return SIGTERM;
  if (name == "SIGUSR1") return SIGUSR1;
  if (name == "SIGUSR2") return SIGUSR2;
  if (name == "SIGINT") return SIGINT;
  if (name == "SIGHUP") return SIGHUP;
  return 0;
}

const char* signal_name(int signal) {
  switch (signal) {
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    case SIGINT: return "SIGINT";
    case SIGHUP: return "SIGHUP";
    default: return "signal";
  }
}

}  // namespace strata::core
