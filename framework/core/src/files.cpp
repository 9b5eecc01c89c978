// Atomic file output (see files.h).
#include "strata/core/files.h"

#include "strata/core/error.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace strata::core {

namespace fs = std::filesystem;

std::string temporary_name(const std::string& path) { return fmt::format("{}.tmp.{}", path, ::getpid()); }

void commit_file(const std::string& tmp, const std::string& path, std::string_view what) {
  int fd = ::open(tmp.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);  // the bytes are on disk before the rename makes them visible
    ::close(fd);
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignore;
    fs::remove(tmp, ignore);
    STRATA_THROW(IoError, "cannot move the {} into place as '{}': {}", what, path, ec.message());
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
