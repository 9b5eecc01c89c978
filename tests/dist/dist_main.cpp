// gtest main for tests under mpirun: one World for the whole binary, full output on
// rank 0, only failures (prefixed with the rank) elsewhere, and an exit status that
// is the same on every rank (a failure anywhere fails the job everywhere).
#include "dist_test.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <memory>

namespace strata::test {
namespace {

comm::World* g_world = nullptr;

// Prints failed assertions of ranks other than 0, which have no default printer.
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    fmt::print(stderr, "[rank {}] {}:{}: failure\n{}\n", rank_, result.file_name() ? result.file_name() : "?",
               result.line_number(), result.summary());
  }

 private:
  int rank_;
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
  if (world->rank() != 0) {
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new strata::test::RankFailurePrinter(world->rank()));
  }
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  int any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, world->comm());
  return any;
}
