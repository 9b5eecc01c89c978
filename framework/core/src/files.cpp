// Atomic file output (see files.h).
#include "strata/core/files.h"

#include "strata/core/error.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace strata::core {

namespace fs = std::filesystem;

std::string temporary_name(const std::string& path) { return fmt::format("{}.tmp.{}", path, ::getpid()); }

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
  const fs::path target(path);
  std::error_code ec;
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
  const std::string tmp = temporary_name(path);
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.close();
    if (!out) {
      fs::remove(tmp, ec);
      STRATA_THROW(IoError, "cannot write the {} '{}'", what, tmp);
    }
  }
  commit_file(tmp, path, what);
}

}  // namespace strata::core
