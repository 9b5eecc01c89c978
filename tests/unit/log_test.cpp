// Rank-aware logging: prefixes, rank-0-only lines, levels.
#include "strata/core/error.h"
#include "strata/core/log.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace strata::core {
namespace {

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    set_log_sink([this](LogLevel, std::string_view line) { lines_.emplace_back(line); });
  }
  void TearDown() override {
    set_log_sink(nullptr);
    set_log_identity({});
    set_log_level(LogLevel::kInfo);
  }
  std::vector<std::string> lines_;
};

TEST_F(LogTest, SingleProcessHasNoRankPrefix) {
  info("hello {}", 1);
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_EQ(lines_[0], "hello 1");
}

TEST_F(LogTest, RankPrefixAndWarningMarker) {
  set_log_identity({2, 4, "h", ""});
  info("step {}", 5);
  warn("slow");
  ASSERT_EQ(lines_.size(), 2u);
  EXPECT_EQ(lines_[0], "[rank 2/4] step 5");
  EXPECT_EQ(lines_[1], "[rank 2/4] warning: slow");
}

TEST_F(LogTest, Log0PrintsOnRankZeroOnly) {
  set_log_identity({1, 2, "h", ""});
  log0("only rank 0");
  EXPECT_TRUE(lines_.empty());
  set_log_identity({0, 2, "h", ""});
  log0("only rank 0");
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_EQ(lines_[0], "[rank 0/2] only rank 0");
}

TEST_F(LogTest, AGroupOfASplitWorldNamesItselfBeforeTheRank) {
  set_log_identity({0, 2, "h", "fold 1"});
  log0("epoch {}", 3);
  warn("slow");
  ASSERT_EQ(lines_.size(), 2u);
  EXPECT_EQ(lines_[0], "[fold 1, rank 0/2] epoch 3");
  EXPECT_EQ(lines_[1], "[fold 1, rank 0/2] warning: slow");
  // A group of one rank still says which group it is.
  set_log_identity({0, 1, "h", "fold 0"});
  info("alone");
  EXPECT_EQ(lines_.back(), "[fold 0, rank 0/1] alone");
}

TEST_F(LogTest, LevelFilters) {
  set_log_level(parse_log_level("warn"));
  info("hidden");
  debug("hidden");
  warn("shown");
  EXPECT_EQ(lines_.size(), 1u);
  set_log_level(LogLevel::kDebug);
  debug("now shown");
  EXPECT_EQ(lines_.size(), 2u);
  EXPECT_THROW(parse_log_level("verbose"), ConfigError);
  EXPECT_STREQ(log_level_name(LogLevel::kError), "error");
}

}  // namespace
}  // namespace strata::core
