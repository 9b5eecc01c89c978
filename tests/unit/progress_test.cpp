// Progress formatting (bar and plain line) and the TTY / non-TTY behaviour.
#include "strata/core/log.h"
#include "strata/core/progress.h"

#include <gtest/gtest.h>

namespace strata::core {
namespace {

ProgressState state(int64_t done, int64_t total, double elapsed) {
  ProgressState s;
  s.label = "epoch 2/5";
  s.done = done;
  s.total = total;
  s.elapsed_s = elapsed;
  s.metrics = {{"loss", "0.312"}, {"lr", "1e-04"}};
  return s;
}

TEST(ProgressTest, FormatsDurations) {
  EXPECT_EQ(format_duration(0), "00:00");
  EXPECT_EQ(format_duration(75.4), "01:15");
  EXPECT_EQ(format_duration(3723), "1:02:03");
  EXPECT_EQ(format_duration(-1), "--:--");
}

TEST(ProgressTest, BarShowsFractionTimesAndMetrics) {
  std::string bar = format_progress_bar(state(25, 100, 10), 60);
  // 25% of a bar whose width is what the label and tail leave (here the 10 minimum).
  EXPECT_EQ(bar, "epoch 2/5 [==>       ] 25/100  00:10<00:30 loss=0.312 lr=1e-04");
  EXPECT_EQ(format_progress_bar(state(100, 100, 40), 60),
            "epoch 2/5 [==========] 100/100  00:40<00:00 loss=0.312 lr=1e-04");
  std::string wide = format_progress_bar(state(50, 100, 10), 140);
  EXPECT_NE(wide.find("[====================>                   ]"), std::string::npos) << wide;
}

TEST(ProgressTest, PlainLineForLogs) {
  EXPECT_EQ(format_progress_line(state(45, 100, 12)),
            "epoch 2/5: 45/100 (45%), 00:12 elapsed, 00:15 left, loss=0.312 lr=1e-04");
  ProgressState unknown = state(7, 0, 3);
  unknown.metrics.clear();
  EXPECT_EQ(format_progress_line(unknown), "epoch 2/5: 7, 00:03 elapsed");
}

class ProgressBarTest : public ::testing::Test {
 protected:
  void SetUp() override {
    set_log_sink([this](LogLevel, std::string_view line) { out_.emplace_back(line); });
  }
  void TearDown() override { set_log_sink(nullptr); }
  std::vector<std::string> out_;
};

TEST_F(ProgressBarTest, NotATtyPrintsPlainLinesAtTheInterval) {
  ProgressOptions o;
  o.tty = false;
  o.line_interval_s = 3600;  // a loop shorter than one interval prints nothing
  {
    ProgressBar bar("eval", 10, o);
    for (int i = 1; i <= 10; ++i) bar.update(i);
  }
  EXPECT_TRUE(out_.empty());
  o.line_interval_s = 0;  // every update is due: one line each, no repeated final line
  {
    ProgressBar bar("eval", 3, o);
    for (int i = 1; i <= 3; ++i) bar.update(i);
  }
  ASSERT_EQ(out_.size(), 3u);
  EXPECT_EQ(out_[0].rfind("eval: 1/3 (33%)", 0), 0u) << out_[0];
  EXPECT_EQ(out_[2].rfind("eval: 3/3 (100%)", 0), 0u) << out_[2];
  out_.clear();
  {
    ProgressBar bar("eval", 4, o);
    bar.update(1);
    bar.update(2);
    bar.finish();  // the lines already showed 2/4: nothing new to close with
  }
  EXPECT_EQ(out_.size(), 2u);
}

TEST_F(ProgressBarTest, TtyRedrawsInPlaceAndEndsTheLine) {
  ProgressOptions o;
  o.tty = true;
  o.redraw_interval_s = 0;
  ProgressBar bar("train", 4, o);
  bar.update(2, {{"loss", "1.0"}});
  bar.finish();
  ASSERT_EQ(out_.size(), 2u);
  EXPECT_EQ(out_[0].rfind("\r\033[Ktrain [", 0), 0u);
  EXPECT_EQ(out_[0].back(), '0');  // no newline while running
  EXPECT_EQ(out_[1].back(), '\n');
}

TEST_F(ProgressBarTest, DisabledOnOtherRanksPrintsNothing) {
  ProgressOptions o;
  o.enabled = false;
  o.tty = false;
  ProgressBar bar("train", 4, o);
  bar.update(4);
  bar.finish();
  EXPECT_TRUE(out_.empty());
}

}  // namespace
}  // namespace strata::core
