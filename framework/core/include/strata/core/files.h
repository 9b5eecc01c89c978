// Atomic file output: whatever is written becomes visible under its final name only
// when complete, so a crash or a full disk never leaves a half-written file in place of
// a good one. Writers produce a temporary file beside the target (same file system,
// so the rename is atomic), then commit it.
#pragma once

#include "strata/core/error.h"

#include <filesystem>
#include <string>
#include <string_view>

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

// fsyncs `tmp`, renames it over `path`, then fsyncs the folder, so that the new file
// survives a crash as a whole. On failure removes `tmp` and throws IoError naming `what`
// and the file; every fsync result is checked.
void commit_file(const std::string& tmp, const std::string& path, std::string_view what);

// Writes `content` to `path` atomically (temporary name, fsync, rename).
void write_file_atomic(const std::string& path, std::string_view content, std::string_view what);

}  // namespace strata::core
