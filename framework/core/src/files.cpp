// Atomic file output (see files.h).
#include "strata/core/files.h"

#include "strata/core/error.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <regex>

namespace strata::core {

namespace fs = std::filesystem;

std::string temporary_name(const std::string& path) { return fmt::format("{}.tmp.{}", path, ::getpid()); }

std::vector<fs::path> temporaries_in(const std::string& dir) {
  static const std::regex temporary(R"(.+\.tmp\.[0-9]+)");
  std::vector<fs::path> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_regular_file(ec) && std::regex_match(e.path().filename().string(), temporary)) found.push_back(e.path());
  }
  std::sort(found.begin(), found.end());
  return found;
}

void commit_file(const std::string& tmp, const std::string& path, std::string_view what) {
  auto give_up = [&](const std::string& why) {
    std::error_code ignore;
    fs::remove(tmp, ignore);
    STRATA_THROW(IoError, "cannot commit the {} '{}': {}", what, path, why);
  };
  // The bytes are on disk before the rename makes them visible...
  int fd = ::open(tmp.c_str(), O_RDONLY);
  if (fd < 0) give_up(fmt::format("cannot reopen {}: {}", tmp, std::strerror(errno)));
  const int synced = ::fsync(fd), fsync_errno = errno;
  ::close(fd);
  if (synced != 0) give_up(fmt::format("fsync of {} failed: {}", tmp, std::strerror(fsync_errno)));
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) give_up(fmt::format("cannot move {} into place: {}", tmp, ec.message()));
  // ...and the rename itself survives a crash: it lives in the folder's entry.
  const fs::path parent = fs::path(path).has_parent_path() ? fs::path(path).parent_path() : fs::path(".");
  int dir = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY);
  if (dir < 0) STRATA_THROW(IoError, "cannot open the folder of '{}' to sync it: {}", path, std::strerror(errno));
  const int dir_synced = ::fsync(dir), dir_errno = errno;
  ::close(dir);
  if (dir_synced != 0) {
    STRATA_THROW(IoError, "fsync of the folder of '{}' failed: {} (the {} is in place but may not survive a crash)",
                 path, std::strerror(dir_errno), what);
  }
}

void write_file_atomic(const std::string& path, std::string_view content, std::string_view what) {
  AtomicFile file(path, what);
  file.write(content.data(), content.size());
  file.commit();
}

void append_file(const std::string& path, std::string_view text, std::string_view what) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int err = fd < 0 ? errno : 0;
  size_t done = 0;
  while (err == 0 && done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = n < 0 ? errno : EIO;
    } else {
      done += static_cast<size_t>(n);
    }
  }
  if (fd >= 0 && ::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) STRATA_THROW(IoError, "cannot append to the {} '{}': {}", what, path, std::strerror(err));
}

AtomicFile::AtomicFile(const std::string& path, std::string_view what)
    : path_(path), tmp_(temporary_name(path)), what_(what) {
  const fs::path target(path);
  std::error_code ec;
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    const int err = errno;
    STRATA_THROW(IoError, "cannot write the {} '{}': cannot create {}: {}", what_, path_, tmp_, std::strerror(err));
  }
}

AtomicFile::~AtomicFile() {
  if (!committed_) discard();
}

void AtomicFile::discard() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  std::error_code ignore;
  fs::remove(tmp_, ignore);
}

size_t AtomicFile::write(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  for (size_t left = n; left > 0 && errno_ == 0;) {
    const ssize_t w = ::write(fd_, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {  // 0 bytes for a non-empty write: no progress possible, as for a full disk
      errno_ = w < 0 ? errno : ENOSPC;
      break;
    }
    p += w;
    left -= static_cast<size_t>(w);
    written_ += static_cast<size_t>(w);
  }
  return n;
}

void AtomicFile::commit() {
  // close() reports what a network file system deferred; fsync in commit_file the rest.
  const int closed = ::close(fd_), close_errno = errno;
  fd_ = -1;
  if (errno_ == 0 && closed != 0) errno_ = close_errno;
  if (errno_ != 0) {
    discard();
    STRATA_THROW(IoError, "cannot write the {} '{}': {} (after {} bytes; {} removed, any previous {} untouched)",
                 what_, path_, std::strerror(errno_), written_, tmp_, fs::path(path_).filename().string());
  }
  committed_ = true;  // from here on commit_file removes the temporary on failure
  commit_file(tmp_, path_, what_);
}

}  // namespace strata::core
