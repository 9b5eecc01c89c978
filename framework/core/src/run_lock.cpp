// One run per run folder (see run_lock.h).
#include "strata/core/run_lock.h"

#include "strata/core/error.h"
#include "strata/core/log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

namespace strata::core {
namespace {

namespace fs = std::filesystem;

std::string this_host() {
  char name[256] = {0};
  ::gethostname(name, sizeof(name) - 1);
  return name;
}

std::string now_text() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

struct Holder {
  std::string host;
  long pid = 0;
  std::string since;
  double age_s = 0;  // since its last heartbeat
};

bool read_holder(const std::string& path, Holder* h) {
  std::ifstream in(path);
  if (!(in >> h->host >> h->pid >> h->since)) return false;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return false;
  h->age_s = std::difftime(std::time(nullptr), st.st_mtime);
  return true;
}

// Whether process `pid` of this host has ended: gone, or a zombie (exited, not yet
// reaped). A rank that ended through MPI_Abort stays a zombie for about a second until
// mpirun reaps it, and an immediate rerun must not find its folder "in use" by it.
bool process_ended(long pid) {
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return true;
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // "pid (comm) S ...": the state follows the last ')', since comm may hold one.
  const size_t close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z';
}

}  // namespace

std::string RunLock::acquire(const std::string& dir, RunLockOptions options) {
  release();
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) return fmt::format("run.dir '{}' is a file; expected a folder", dir);
  fs::create_directories(dir, ec);
  if (ec) return fmt::format("cannot create run.dir '{}': {}", dir, ec.message());
  const std::string path = (fs::path(dir) / "LOCK").string();
  const std::string host = this_host();
  const std::string content = fmt::format("{} {} {}\n", host, static_cast<long>(::getpid()), now_text());
  for (int attempt = 0; attempt < 2; ++attempt) {
    int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
    if (fd >= 0) {
      const bool written = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
      ::close(fd);
      if (!written) return fmt::format("cannot write {}", path);
      path_ = path;
      content_ = content;
      stop_ = false;
      heartbeat_ = std::thread([this, options] {
        while (!stop_) {
          for (int k = 0; k < static_cast<int>(options.heartbeat_s * 10) && !stop_; ++k) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
          }
          if (!stop_) ::utimensat(AT_FDCWD, path_.c_str(), nullptr, 0);  // mtime = now
        }
      });
      return "";
    }
    if (errno != EEXIST) return fmt::format("cannot create {}: {}", path, std::strerror(errno));
    Holder h;
    if (!read_holder(path, &h)) {
      return fmt::format("{} exists but cannot be read as 'host pid start-time'; delete it if no run uses '{}'",
                         path, dir);
    }
    bool stale = false;
    std::string why;
    if (h.host == host) {
      stale = process_ended(h.pid);
      why = fmt::format("process {} has ended", h.pid);
    } else {
      stale = h.age_s > options.stale_after_s;
      why = fmt::format("no heartbeat from {} for {:.0f} s", h.host, h.age_s);
    }
    if (!stale) {
      return fmt::format("run.dir '{}' is in use by pid {} on {} since {} (its LOCK was refreshed {:.0f} s ago): two "
                         "runs in one folder would interleave their metrics and overwrite each other's checkpoints. "
                         "Wait for that run, stop it, or set another run.dir",
                         dir, h.pid, h.host, h.since, h.age_s);
    }
    warn("taking over the stale lock of run.dir '{}' (pid {} on {} since {}: {})", dir, h.pid, h.host, h.since, why);
    fs::remove(path, ec);
  }
  return fmt::format("could not take {}: another process took it at the same moment", path);
}

void RunLock::release() {
  stop_ = true;
  if (heartbeat_.joinable()) heartbeat_.join();
  if (path_.empty()) return;
  std::ifstream in(path_);
  std::stringstream now;
  now << in.rdbuf();
  if (now.str() == content_) {  // still ours (not taken over as stale by someone else)
    std::error_code ec;
    fs::remove(path_, ec);
  }
  path_.clear();
}

RunLock::~RunLock() { release(); }

}  // namespace strata::core
