// gtest main of the one-process tests (unit, gpu): skip reasons printed, and exit status
// 77 (ctest: skipped) when every test that ran was skipped (tests/common/gtest_status.h).
#include "gtest_status.h"

#include <gtest/gtest.h>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::UnitTest::GetInstance()->listeners().Append(new strata::test::SkipReasonPrinter);
  const int rc = RUN_ALL_TESTS();
  const auto c = strata::test::RunCounts::of(*::testing::UnitTest::GetInstance());
  return strata::test::exit_code(rc != 0 || c.failed > 0, c.passed, c.skipped);
}
