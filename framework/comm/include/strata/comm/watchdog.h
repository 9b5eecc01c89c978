// Watchdog and flight recorder of one rank's collectives.
//
// Every blocking collective (World's host reductions and barriers, the communicators'
// tensor collectives, which the reducer waits on) is recorded here: issued (a sequence
// number per channel, the same on every rank because collectives are issued in the same
// order everywhere), started (the rank is inside it) and ended. A thread checks the open
// records; when one has been in flight longer than the timeout:
//   1. it asks every other rank, over a side communicator of its own, where it is (the
//      peers' watchdog threads answer even while their ranks are blocked in MPI; a
//      stopped or hung process does not answer);
//   2. it names the rank that is behind: no answer, or an answer whose sequence number
//      shows it has not reached the collective the others wait in;
//   3. it tells every rank to end with that message (each prints one error line with
//      its own view), writes <flight_dir>/rank-<r>.json with its last collectives, runs
//      the abort hooks (NCCL: ncclCommAbort) and calls MPI_Abort.
// The flight file is also written on any other abort (World::abort_all).
//
// Contract: construction is collective (it duplicates the world's communicator). begin,
// start, end and set_step may be called from any thread. Time spent queued behind
// earlier collectives of the same channel does not count: only started records time out.
#pragma once

#include <mpi.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace strata::comm {

// Channels number their collectives independently: host reductions run on the calling
// thread, tensor collectives on a communicator's own thread (or stream), so only the
// order within a channel is the same on every rank.
enum class Channel { kWorld, kComm };
const char* channel_name(Channel channel);

struct CollectiveRecord {
  int64_t id = 0;       // unique on this rank (ring buffer key)
  Channel channel = Channel::kWorld;
  int64_t seq = 0;      // per channel, from 1; the same collective has the same seq on every rank
  std::string op;       // allreduce | broadcast | barrier | any_rank | max | sum | ...
  int64_t bytes = 0;
  int bucket = -1;      // gradient bucket, or -1
  int64_t step = -1;    // training step when issued (-1: outside training)
  double issued_s = 0;  // seconds since the watchdog started
  double start_s = -1;  // -1 while queued
  double end_s = -1;    // -1 while in flight
};

struct WatchdogOptions {
  double timeout_s = 1800;     // a started collective open longer than this ends the job
  std::string flight_dir;      // folder of rank-<r>.json; empty: no flight file
  size_t capacity = 256;       // records kept (the last ones)
  double poll_s = 0.1;         // how often the thread looks
  double answer_s = 5;         // how long a timed-out rank waits for the others' answers
  double grace_s = 2;          // time given to every rank to print before MPI_Abort
};

class Watchdog {
 public:
  Watchdog(MPI_Comm world, int rank, int size, WatchdogOptions options);  // collective
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Records a collective issued now (queued); returns its id. `probe`, when given,
  // says whether it has completed (NCCL: its CUDA event), for records that end on a
  // device rather than by a call to end().
  int64_t begin(Channel channel, const char* op, int64_t bytes, int bucket = -1,
                std::function<bool()> probe = nullptr);
  void start(int64_t id);  // the rank is now inside the collective
  void end(int64_t id);
  // begin + start, for collectives that run on the calling thread.
  int64_t enter(Channel channel, const char* op, int64_t bytes) {
    int64_t id = begin(channel, op, bytes);
    start(id);
    return id;
  }

  void set_step(int64_t step) { step_.store(step); }
  void set_flight_dir(const std::string& dir);
  void set_timeout(double seconds);
  double timeout() const;
  // Runs (once, in order) before MPI_Abort on a timeout: communicators abort themselves.
  int add_abort_hook(std::function<void()> hook);
  void remove_abort_hook(int handle);

  // Writes <flight_dir>/rank-<r>.json (atomically); returns its path, or "" when no
  // flight_dir is set. Safe to call from an error path.
  std::string dump(const std::string& reason) const;
  std::vector<CollectiveRecord> records() const;
  // This rank's state as the others see it on a timeout.
  std::string status_json() const;

  // Where the thread's timeout message went (tests): empty until it fired.
  std::string fired_message() const;
  // Test hook: what a timeout does after its message, instead of MPI_Abort.
  void set_abort_action_for_test(std::function<void(const std::string&)> action);

 private:
  struct Open;
  void run();
  void service_requests();
  void check_timeouts();
  void on_timeout(const CollectiveRecord& stalled);
  void on_notice(int from, const std::string& message);
  void finish(const std::string& message);
  std::string gather_view(const CollectiveRecord& stalled);
  double now() const;
  void send_async(int dest, int tag, std::string payload);
  void reap_sends(bool all);

  MPI_Comm side_ = MPI_COMM_NULL;
  int rank_;
  int size_;
  WatchdogOptions options_;
  std::chrono::steady_clock::time_point epoch_;
  mutable std::mutex mutex_;
  std::deque<CollectiveRecord> ring_;
  std::map<int64_t, std::function<bool()>> probes_;
  std::map<Channel, int64_t> next_seq_;
  std::map<Channel, int64_t> last_done_;
  int64_t next_id_ = 1;
  std::atomic<int64_t> step_{-1};
  std::map<int, std::function<void()>> hooks_;
  int next_hook_ = 1;
  std::function<void(const std::string&)> abort_action_;
  std::string fired_;
  std::atomic<bool> firing_{false};
  std::atomic<bool> stop_{false};
  std::vector<std::pair<MPI_Request, std::shared_ptr<std::string>>> sends_;  // watchdog thread only
  std::thread thread_;
};

}  // namespace strata::comm
