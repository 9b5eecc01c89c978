// Stop signals set a flag (and nothing else) that the training loop polls.
#include "strata/core/signals.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

namespace strata::core {
namespace {

TEST(StopSignalsTest, RealSignalSetsTheFlagOnceAndResetClearsIt) {
  StopSignals::install();
  StopSignals::reset();
  EXPECT_EQ(StopSignals::received(), 0);
  std::raise(SIGUSR1);  // the process survives: the handler only records it
  EXPECT_EQ(StopSignals::received(), SIGUSR1);
  std::raise(SIGTERM);  // the first signal is the one reported
  EXPECT_EQ(StopSignals::received(), SIGUSR1);
  EXPECT_STREQ(signal_name(StopSignals::received()), "SIGUSR1");
  StopSignals::reset();
  EXPECT_EQ(StopSignals::received(), 0);
  StopSignals::raise_for_test(SIGTERM);
  EXPECT_EQ(StopSignals::received(), SIGTERM);
  StopSignals::reset();
}

TEST(StopSignalsTest, ASecondCtrlCEndsTheProcessAtOnce) {
  // In a child process: the first SIGINT only sets the flag (graceful stop at the next
  // step); the second has SIGINT's default effect. The parent sees how the child ended.
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    StopSignals::install();
    StopSignals::reset();
    std::raise(SIGINT);
    if (StopSignals::received() != SIGINT) _exit(3);  // the first press must only set the flag
    std::raise(SIGINT);
    _exit(0);  // not reached when the second press ends the process
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_FALSE(WIFEXITED(status)) << "the child exited with " << WEXITSTATUS(status);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGINT);
}

TEST(StopSignalsTest, OnlyTheConfiguredSignalsStopAndNamesMapToNumbers) {
  EXPECT_EQ(signal_number("SIGUSR2"), SIGUSR2);
  EXPECT_EQ(signal_number("SIGKILL"), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::signal(SIGUSR1, SIG_DFL);
    StopSignals::install({SIGTERM});  // a cluster that uses USR1 for something else
    StopSignals::reset();
    std::raise(SIGTERM);
    if (StopSignals::received() != SIGTERM) _exit(3);
    std::raise(SIGUSR1);  // not a stop signal here: its default action ends the process
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGUSR1);
}

}  // namespace
}  // namespace strata::core
