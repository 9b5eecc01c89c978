// RunLock: a run folder belongs to one run at a time.
//
// <dir>/LOCK holds "host pid start-time" of the process that owns the folder. It is
// created exclusively (O_EXCL), refreshed every heartbeat (its mtime), and removed when
// the owner releases it. A second run finds it and is refused, naming the holder. A lock
// left by a process that died (MPI_Abort, kill -9) is stale and taken over: on the same
// host when that pid no longer exists, on another host when its heartbeat stopped for
// longer than `stale_after_s`.
//
// Thread safety: one owner; the heartbeat thread only touches the file's mtime.
#pragma once

#include <atomic>
#include <string>
#include <thread>

namespace strata::core {

struct RunLockOptions {
  double heartbeat_s = 30;     // how often the owner refreshes the lock's mtime
  double stale_after_s = 300;  // another host's lock without a heartbeat this long is stale
};

class RunLock {
 public:
  // Takes <dir>/LOCK (creating dir). Returns an empty string when taken (with a warning
  // logged when a stale lock was taken over), else why not: the holder's host, pid and
  // start time. Never throws for a held lock, so that callers can agree across ranks.
  std::string acquire(const std::string& dir, RunLockOptions options = {});
  // Removes the lock if this process holds it. Also done by the destructor.
  void release();
  ~RunLock();

  bool held() const { return !path_.empty(); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string content_;
  std::atomic<bool> stop_{false};
  std::thread heartbeat_;
};

}  // namespace strata::core
