// What every Strata gtest binary reports to ctest: a line per skipped test with its
// reason ("SKIPPED: Suite.Name: reason", which scripts/test.sh collects), and an exit
// status ctest can tell apart: 0 when tests ran and passed, 1 on any failure, and
// kSkipExitCode (the SKIP_RETURN_CODE of every gtest ctest entry) when no test passed
// because every one that ran was skipped. A skip is never a pass, and a run in which no
// test ran at all (a filter that matches nothing) is a failure.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

namespace strata::test {

inline constexpr int kSkipExitCode = 77;

// Prints each skip with the message given to GTEST_SKIP(); skips show nothing by default
// but "[  SKIPPED ]" and the name.
class SkipReasonPrinter : public ::testing::EmptyTestEventListener {
 public:
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (result.skipped()) reason_ = result.message() ? result.message() : "";
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (!info.result()->Skipped()) return;
    std::printf("SKIPPED: %s.%s: %s\n", info.test_suite_name(), info.name(),
                reason_.empty() ? "(no reason given)" : reason_.c_str());
    std::fflush(stdout);
    reason_.clear();
  }

 private:
  std::string reason_;
};

// The status of this process's run, from gtest's own counts.
struct RunCounts {
  int passed = 0, failed = 0, skipped = 0;
  static RunCounts of(const ::testing::UnitTest& u) {
    return {u.successful_test_count(), u.failed_test_count(), u.skipped_test_count()};
  }
};

inline int exit_code(bool any_failed, int passed, int skipped) {
  if (any_failed) return 1;
  if (passed == 0 && skipped == 0) {
    std::fprintf(stderr, "no test ran: nothing passed and nothing was skipped\n");
    return 1;
  }
  return passed == 0 ? kSkipExitCode : 0;
}

}  // namespace strata::test
