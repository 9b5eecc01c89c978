// Atomic file output: whatever is written becomes visible under its final name only
// when complete, so a crash or a full disk never leaves a half-written file in place of
// a good one. Writers produce a temporary file beside the target (same file system,
// so the rename is atomic), then commit it.
#pragma once

#include "strata/core/error.h"

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace strata::core {

// What a path given by the user must be: an existing file, or an existing folder. The
// error (of type E) names the path, what it is for, what was found and what was expected.
template <class E>
void require_file(const std::string& path, std::string_view role) {
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(st)) throw E(fmt::format("{} '{}' does not exist", role, path));
  if (std::filesystem::is_directory(st)) {
    throw E(fmt::format("{} '{}' is a folder; expected a file", role, path));
  }
}
template <class E>
void require_folder(const std::string& path, std::string_view role) {
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(st)) throw E(fmt::format("{} '{}' does not exist", role, path));
  if (!std::filesystem::is_directory(st)) throw E(fmt::format("{} '{}' is a file; expected a folder", role, path));
}

// "<path>.tmp.<pid>": the temporary name to write `path` under.
std::string temporary_name(const std::string& path);

// The temporaries ("<name>.tmp.<pid>") directly in `dir`: what writes cut short by a
// crash or kill -9 left behind (writes that fail otherwise remove their own).
std::vector<std::filesystem::path> temporaries_in(const std::string& dir);

// fsyncs `tmp`, renames it over `path`, then fsyncs the folder, so that the new file
// survives a crash as a whole. On failure removes `tmp` and throws IoError naming `what`
// and the file; every fsync result is checked.
void commit_file(const std::string& tmp, const std::string& path, std::string_view what);

// Writes `content` to `path` atomically (temporary name, fsync, rename).
void write_file_atomic(const std::string& path, std::string_view content, std::string_view what);

// Appends `text` to `path` (created if absent) with one write; IoError naming `what`, the
// file and the system's reason (a full disk: ENOSPC) when it cannot be written whole.
// For logs that grow as a run goes (metrics.jsonl, the sample log): a failed append may
// leave a partial last line, never a lost earlier one.
void append_file(const std::string& path, std::string_view text, std::string_view what);

// A file written piece by piece under its temporary name, then committed: for output
// produced as a stream (a checkpoint's zip). Every write is checked. The first failure
// (a full disk: ENOSPC) is kept and later writes are dropped, so that a producer that
// cannot take an exception from its sink (libtorch's zip writer, whose destructor then
// terminates the process) runs to its end; commit() then throws it. The temporary file
// is removed unless committed, on every path.
class AtomicFile {
 public:
  // Creates the folder of `path` and opens "<path>.tmp.<pid>"; IoError naming `what`.
  AtomicFile(const std::string& path, std::string_view what);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Appends `n` bytes; returns n, also after a failure (which commit() reports).
  size_t write(const void* data, size_t n);
  // IoError naming the file and the system's reason (strerror) if a write failed; else
  // closes, fsyncs and renames the file into place (commit_file).
  void commit();

 private:
  void discard();

  std::string path_, tmp_, what_;
  int fd_ = -1;
  int errno_ = 0;       // of the first failed write (0: none)
  size_t written_ = 0;  // bytes written before it
  bool committed_ = false;
};

}  // namespace strata::core
