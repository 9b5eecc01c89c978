// gtest main for tests under mpirun: one World for the whole binary, full output on
// rank 0, and the same verdict on every rank:
//   - a failed assertion on any rank ends every rank at once (MPI_Abort) with that rank's
//     message, so a rank that returns early from a test can never leave the others
//     waiting in a collective until ctest's timeout;
//   - the exit status is ctest's (tests/common/gtest_status.h): 1 on a failure, 77 when
//     every test was skipped on every rank, 0 otherwise.
#include "../common/gtest_status.h"
#include "dist_test.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>

namespace strata::test {
namespace {

comm::World* g_world = nullptr;

// Ends the job at the first failed assertion on any rank, after printing it with the
// rank and the test. The other ranks may be inside a collective the failing rank will
// never reach; MPI_Abort ends them too, and mpirun's exit status is non-zero.
class AbortOnFailure : public ::testing::EmptyTestEventListener {
 public:
  explicit AbortOnFailure(int rank, int size) : rank_(rank), size_(size) {}
  // The name is kept here: gtest holds its own lock while it reports a part result, so
  // current_test_info() cannot be asked from OnTestPartResult (it would deadlock).
  void OnTestStart(const ::testing::TestInfo& info) override {
    test_ = std::string(info.test_suite_name()) + "." + info.name();
  }
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    fmt::print(stderr, "[rank {}/{}] {}: {}:{}: failure\n{}\n[rank {}/{}] aborting every rank at this failure\n",
               rank_, size_, test_, result.file_name() ? result.file_name() : "?", result.line_number(),
               result.summary(), rank_, size_);
    std::fflush(stdout);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }

 private:
  int rank_, size_;
  std::string test_ = "(outside a test)";
};

}  // namespace

comm::World& world() { return *g_world; }

bool all_ranks(bool local_ok) {
  int ok = local_ok ? 1 : 0, all = 0;
  MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, g_world->comm());
  return all == 1;
}

std::string test_data_path() {
  const char* p = std::getenv("STRATA_TEST_DATA");
  return p ? p : "";
}

SharedTempDir::SharedTempDir(const std::string& name) {
  long pid = static_cast<long>(::getpid());
  MPI_Bcast(&pid, 1, MPI_LONG, 0, g_world->comm());
  path_ = std::filesystem::temp_directory_path() / fmt::format("{}_{}", name, pid);
  if (g_world->rank() == 0) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  g_world->barrier();
}

SharedTempDir::~SharedTempDir() {
  g_world->barrier();
  std::error_code ignore;
  if (g_world->rank() == 0) std::filesystem::remove_all(path_, ignore);
}

}  // namespace strata::test

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto world = std::make_unique<strata::comm::World>(&argc, &argv);
  strata::test::g_world = world.get();
  auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
  if (world->rank() != 0) delete listeners.Release(listeners.default_result_printer());
  if (world->rank() == 0) listeners.Append(new strata::test::SkipReasonPrinter);
  listeners.Append(new strata::test::AbortOnFailure(world->rank(), world->size()));
  const int rc = RUN_ALL_TESTS();
  const auto c = strata::test::RunCounts::of(*::testing::UnitTest::GetInstance());
  // The verdict of all ranks together: any failure, and the passes and skips of the job.
  int mine[3] = {rc != 0 || c.failed > 0 ? 1 : 0, c.passed, c.skipped}, all[3] = {0, 0, 0};
  MPI_Allreduce(&mine[0], &all[0], 1, MPI_INT, MPI_MAX, world->comm());
  MPI_Allreduce(&mine[1], &all[1], 2, MPI_INT, MPI_SUM, world->comm());
  return strata::test::exit_code(all[0] != 0, all[1], all[2]);
}
