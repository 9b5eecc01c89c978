// The collective watchdog under mpirun: one rank arrives late at a collective; the
// others time out, ask every rank where it is, name the late rank with its step and
// last collective, and every rank reports once and writes its flight record. The abort
// itself is replaced by a test action (the fault tests end real jobs).
#include "dist_test.h"
#include "strata/comm/watchdog.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <thread>

namespace strata::comm {
namespace {

using test::world;

TEST(WatchdogTest, ALateRankIsNamedAndEveryRankReportsOnce) {
  const World& w = world();
  test::SharedTempDir dir("strata_flight");
  WatchdogOptions o;
  o.timeout_s = 0.5;
  o.poll_s = 0.02;
  o.answer_s = 5;
  o.grace_s = 0.2;
  o.flight_dir = dir.path().string();
  Watchdog wd(w.comm(), w.rank(), w.size(), o);
  std::atomic<int> fired{0};
  wd.set_abort_action_for_test([&](const std::string&) { ++fired; });
  wd.set_step(41);

  const int late = w.size() - 1;
  MPI_Comm c;
  MPI_Comm_dup(w.comm(), &c);
  if (w.rank() == late) std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // outside any collective
  const int64_t id = wd.enter(Channel::kWorld, "allreduce(test)", 4);
  int one = 1, sum = 0;
  MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, c);
  wd.end(id);
  EXPECT_EQ(sum, w.size());
  for (int k = 0; k < 500 && fired == 0; ++k) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  MPI_Comm_free(&c);

  const std::string msg = wd.fired_message();
  EXPECT_EQ(fired.load(), 1) << msg;
  if (w.rank() != late) {
    EXPECT_NE(msg.find("collective world #1 allreduce(test) of 4 bytes at step 41 did not complete within "
                       "run.comm_timeout_s = 0.5 s"),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find(fmt::format("behind: rank {} (step 41, last world #0 done, not in a collective)", late)),
              std::string::npos)
        << msg;
  } else {
    EXPECT_NE(msg.find("the job ends on rank"), std::string::npos) << msg;
    EXPECT_NE(msg.find("(this rank: not in a collective)"), std::string::npos) << msg;
  }
  // Every rank's flight record; the waiting ranks' last record is the stalled collective
  // (the late rank wrote its own before it got there).
  std::ifstream in(dir.path() / fmt::format("rank-{}.json", w.rank()));
  ASSERT_TRUE(in.good()) << "no flight record for rank " << w.rank();
  auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["rank"], w.rank());
  EXPECT_EQ(j["step"], 41);
  if (w.rank() != late) {
    ASSERT_FALSE(j["records"].empty());
    EXPECT_EQ(j["records"].back()["op"], "allreduce(test)");
    EXPECT_EQ(j["records"].back()["seq"], 1);
    EXPECT_LT(j["records"].back()["end_s"].get<double>(), 0) << "still open when the record was written";
  } else {
    EXPECT_TRUE(j["records"].empty());
  }
  world().barrier();
}

}  // namespace
}  // namespace strata::comm
