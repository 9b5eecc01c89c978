// Atomic file output: whatever is written becomes visible under its final name only
// when complete, so a crash or a full disk never leaves a half-written file in place of
// a good one. Writers produce a temporary file beside the target (same file system,
// so the rename is atomic), then commit it.
#pragma once

#include <string>
#include <string_view>

namespace strata::core {

// "<path>.tmp.<pid>": the temporary name to write `path` under.
std::string temporary_name(const std::string& path);

// fsyncs `tmp`, renames it over `path` (creating the folder). On failure removes `tmp`
// and throws IoError naming `what` and the file.
void commit_file(const std::string& tmp, const std::string& path, std::string_view what);

// Writes `content` to `path` atomically (temporary name, fsync, rename).
void write_file_atomic(const std::string& path, std::string_view content, std::string_view what);

}  // namespace strata::core
