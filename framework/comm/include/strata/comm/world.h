// The MPI world of one training job: initialisation, rank, local rank, device binding,
// the start-up consistency check, and fatal aborts.
//
// Exactly one World exists per process, created first in `main` (or in a test main)
// and destroyed last: communicators must be destroyed before it finalizes MPI.
// Collective members (check_same_config, barrier) must be called by every rank, in
// the same order.
#pragma once

#include "strata/comm/watchdog.h"
#include "strata/core/log.h"

#include <mpi.h>
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace strata::comm {

class World {
 public:
  // MPI_Init_thread, asking for MPI_THREAD_MULTIPLE (communicators run MPI on their
  // own thread). Adopts an MPI that is already initialized (and then leaves
  // finalizing to whoever initialized it). Sets the log identity "[rank r/N]".
  // Open MPI is asked to yield the core while it waits (mpi_yield_when_idle), unless the
  // environment says otherwise: the MPI communicator's thread shares its rank's cores with
  // the backward pass, which a spinning wait would take cycles from.
  World(int* argc, char*** argv);
  ~World();

  // Collective: the ranks of this world that pass the same `color` form a new World (a
  // group, MPI_Comm_split, ranks in this world's order), e.g. the folds of `train --folds
  // K`. The group keeps this world's node-local rank and host, so device binding never
  // puts two groups' ranks on one GPU; it has no watchdog until start_watchdog; its
  // aborts end the whole job. While it lives, log lines and error origins carry `label`
  // ("[fold 1, rank 0/2]") and the group's rank and size; destroying it restores this
  // world's. Destroy it before this world.
  std::unique_ptr<World> split(int color, const std::string& label) const;
  // Collective, not watched: returns when every rank has called it, polling every
  // `poll_ms` so that ranks that finish early do not spin on cores the others train on
  // (groups of a split world end at different times; a stalled group's own watchdog
  // ends the job).
  void wait_for_all(int poll_ms = 50) const;
  const std::string& label() const { return label_; }
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  // Rank among the processes of this node (MPI_Comm_split_type SHARED) and their count.
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  const std::string& host() const { return host_; }
  // MPI's granted thread level is MPI_THREAD_MULTIPLE.
  bool thread_multiple() const { return thread_level_ >= MPI_THREAD_MULTIPLE; }
  // Strata's own duplicate of MPI_COMM_WORLD (errors return instead of aborting).
  MPI_Comm comm() const { return comm_; }

  // With CUDA: binds this process to GPU local_rank % device_count and returns it;
  // without a CUDA device: the CPU. `prefer` = "auto" | "cpu" | "cuda".
  torch::Device bind_device(const std::string& prefer = "auto") const;

  // Collective. Every rank passes the hash of its resolved config and its text; when any
  // hash differs from rank 0's, every rank throws the same ConfigError (on_every_rank)
  // naming the ranks and the keys that differ.
  void check_same_config(uint64_t hash, const std::string& yaml, const std::string& what = "config") const;
  // Collective: which ranks run on which host, with their local ranks, e.g.
  // "h1: ranks 0, 2 (local 0, 1); h2: ranks 1, 3 (local 0, 1)". Throws CommError on every
  // rank when a host's local ranks are not 0..k-1 (MPI's idea of a node is not the host's).
  std::string describe_hosts() const;
  // Collective: every rank's string, in rank order.
  std::vector<std::string> all_gather(const std::string& mine) const;
  // Collective: when `local_error` is not empty on some rank, every rank throws the same
  // ConfigError (on_every_rank) with the distinct messages and the ranks that saw them.
  void agree_on_error(const std::string& local_error) const;
  // Collective: runs `body`, which must not call collectives, on every rank; when it
  // throws a Strata error on any rank, every rank throws the same error (its kind kept,
  // on_every_rank), so it is printed once and no rank waits for one that failed.
  void agree(const std::function<void()>& body) const;

  void barrier() const;

  // Collective: true on every rank when `flag` is true on at least one rank (a stop
  // signal that reached some ranks, an error some ranks saw).
  bool any_rank(bool flag) const;
  // Collective: the maximum / sum over ranks of a host value (timings, counters).
  double max_over_ranks(double value) const;
  double sum_over_ranks(double value) const;

  // Logs `message` once on this rank, writes the flight record (when the watchdog runs
  // and has a flight folder), then MPI_Abort: every rank of the job ends.
  [[noreturn]] void abort_all(const std::string& message, int code = 1) const;

  // Collective: starts the collective watchdog (watchdog.h). Until then, and in tests
  // that never start it, collectives are not watched. Communicators made afterwards
  // report their collectives to it.
  void start_watchdog(WatchdogOptions options);
  Watchdog* watchdog() const { return watchdog_.get(); }

 private:
  World() = default;  // split()
  // The distinct errors of the ranks (empty: none), origins removed, with their ranks.
  std::string merge_errors(std::vector<std::string> errors) const;

  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
  int thread_level_ = 0;
  bool owns_mpi_ = false;
  std::string host_;
  std::string label_;                      // a group's name ("fold 1"); empty for the job's world
  core::LogIdentity parent_identity_;      // a group's: restored when it is destroyed
  MPI_Comm comm_ = MPI_COMM_NULL;
  std::unique_ptr<Watchdog> watchdog_;  // destroyed before MPI finalizes
};

// Marks a blocking collective on the calling thread for the watchdog (no-op without one).
class WatchedCall {
 public:
  WatchedCall(Watchdog* wd, Channel channel, const char* op, int64_t bytes)
      : wd_(wd), id_(wd ? wd->enter(channel, op, bytes) : 0) {}
  ~WatchedCall() {
    if (wd_) wd_->end(id_);
  }
  WatchedCall(const WatchedCall&) = delete;
  WatchedCall& operator=(const WatchedCall&) = delete;

 private:
  Watchdog* wd_;
  int64_t id_;
};

}  // namespace strata::comm
