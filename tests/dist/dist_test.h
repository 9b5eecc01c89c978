// Helpers for tests that run under mpirun with tests/dist's gtest main (dist_main.cpp).
#pragma once

#include "strata/comm/world.h"

#include <filesystem>
#include <string>

namespace strata::test {

// The process's World, created by dist_main before any test runs.
comm::World& world();

// True on every rank when `local_ok` is true on every rank (an allreduce), so each
// rank reaches the same verdict about a distributed check.
bool all_ranks(bool local_ok);

// $STRATA_TEST_DATA: the packed dataset of the ctest fixture make_train_data, or ""
// when the test runs outside ctest.
std::string test_data_path();

// A fresh folder under the system temp dir that every rank of the job shares: rank 0
// creates it (named after its pid) and removes it, with barriers around both, so
// collective: construct and destroy it on every rank.
class SharedTempDir {
 public:
  explicit SharedTempDir(const std::string& name);
  ~SharedTempDir();
  SharedTempDir(const SharedTempDir&) = delete;
  SharedTempDir& operator=(const SharedTempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace strata::test
