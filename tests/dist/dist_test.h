// Helpers for tests that run under mpirun with tests/dist's gtest main (dist_main.cpp).
#pragma once

#include "strata/comm/world.h"

namespace strata::test {

// The process's World, created by dist_main before any test runs.
comm::World& world();

// True on every rank when `local_ok` is true on every rank (an allreduce), so each
// rank reaches the same verdict about a distributed check.
bool all_ranks(bool local_ok);

}  // namespace strata::test
