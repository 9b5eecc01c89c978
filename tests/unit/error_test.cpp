// Typed errors and the STRATA_CHECK macros.
#include "strata/core/error.h"
#include "strata/core/log.h"

#include <gtest/gtest.h>

namespace strata::core {
namespace {

TEST(ErrorTest, CheckThrowsInternalErrorWithConditionAndLocation) {
  int x = 3;
  try {
    STRATA_CHECK(x == 4, "x is {}", x);
    FAIL() << "no throw";
  } catch (const InternalError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("check `x == 4` failed: x is 3"), std::string::npos) << what;
    EXPECT_NE(what.find("error_test.cpp:"), std::string::npos) << what;
    EXPECT_STREQ(e.kind(), "internal error");
  }
}

TEST(ErrorTest, PassingCheckDoesNothing) { EXPECT_NO_THROW(STRATA_CHECK(1 + 1 == 2, "math")); }

TEST(ErrorTest, TypedErrorsAreCatchableAsErrorAndKeepTheirKind) {
  try {
    STRATA_THROW(DataError, "slice {} of '{}' has label {}", 12, "a.h5", 7);
    FAIL() << "STRATA_THROW did not throw";
  } catch (const Error& e) {
    EXPECT_STREQ(e.kind(), "data error");
    EXPECT_NE(std::string(e.what()).find("slice 12 of 'a.h5' has label 7"), std::string::npos);
  }
  EXPECT_THROW(STRATA_CHECK_AS(ConfigError, false, "bad"), ConfigError);
  EXPECT_THROW(STRATA_CHECK_AS(CommError, false, "bad"), CommError);
  EXPECT_THROW(STRATA_CHECK_AS(CheckpointError, false, "bad"), Error);
}

TEST(ErrorTest, OriginNamesRankAndHostInAWorld) {
  set_log_identity({1, 4, "node7", ""});
  try {
    STRATA_THROW(CommError, "peer lost");
    FAIL() << "STRATA_THROW did not throw";
  } catch (const CommError& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1/4 on node7"), std::string::npos) << e.what();
  }
  set_log_identity({1, 2, "node7", "fold 3"});
  try {
    STRATA_THROW(CommError, "peer lost");
    FAIL() << "STRATA_THROW did not throw";
  } catch (const CommError& e) {
    EXPECT_NE(std::string(e.what()).find("fold 3, rank 1/2 on node7"), std::string::npos) << e.what();
  }
  set_log_identity({});
}

}  // namespace
}  // namespace strata::core
