// Stop signals set a flag (and nothing else) that the training loop polls.
#include "strata/core/signals.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace strata::core
