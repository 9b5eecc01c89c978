// Helpers shared by Strata's unit tests, whatever the module.
#pragma once

#include "strata/core/error.h"

#include <sys/resource.h>

#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <string>

namespace strata::test {

// The message of the core::Error that `f` throws, or "" when it throws none.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const core::Error& e) {
    return e.what();
  }
  return "";
}

// The message of the E that `f` throws; "" when it throws nothing or another type.
template <class E, class F>
std::string error_as(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (...) {
  }
  return "";
}

// A fresh folder "<tmp>/strata_<name>_<pid>", removed with its contents at the end.
struct TempDir {
  explicit TempDir(const std::string& name)
      : path(std::filesystem::temp_directory_path() / fmt::format("strata_{}_{}", name, ::getpid())) {
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::filesystem::path path;
};

// While alive, files this process writes cannot grow past `bytes`: a write beyond it
// fails (EFBIG, "File too large") as a write to a full disk fails (ENOSPC), without
// needing a small file system. SIGXFSZ, which would end the process, is ignored.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    previous_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit limit = saved_;
    limit.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, previous_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit saved_{};
  void (*previous_)(int) = SIG_DFL;
};

}  // namespace strata::test
