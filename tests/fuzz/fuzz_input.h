// What every libFuzzer harness of tests/fuzz shares: the input bytes as a file (the
// parsers under test read paths, as they do for a user's files), and the rule that
// tells a finding from a refusal.
//
// The rule: bad input must end in a typed Strata error that names it (ConfigError,
// DataError, CheckpointError, IoError). An InternalError, any other exception, a crash,
// a sanitizer report or a hang is a finding: the harness aborts, libFuzzer saves the
// input as crash-<sha1>, and that file, copied into tests/fuzz/corpus/<name>/, stays a
// regression test (tests/fuzz/README.md).
#pragma once

#include "strata/core/error.h"

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <string>
#include <typeinfo>

namespace strata::fuzz {

// The input written to a fresh file `<TMPDIR>/strata-fuzz-<pid>-<n><suffix>`, removed
// when it goes out of scope (the suffix picks the parser: .nii, .nii.gz, .h5, ...).
class InputFile {
 public:
  InputFile(const uint8_t* data, size_t size, const std::string& suffix) {
    static int counter = 0;
    const char* tmp = std::getenv("TMPDIR");
    path_ = std::string(tmp && *tmp ? tmp : "/tmp") + "/strata-fuzz-" + std::to_string(getpid()) + "-" +
            std::to_string(counter++) + suffix;
    std::ofstream(path_, std::ios::binary).write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  ~InputFile() { std::remove(path_.c_str()); }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Runs `parse`; a typed error about the input is the expected refusal, anything else
// aborts with its message (a finding).
template <class F>
void expect_clean_refusal(F&& parse) {
  try {
    parse();
  } catch (const core::InternalError& e) {
    std::fprintf(stderr, "FUZZ FINDING: internal error on outside input: %s\n", e.what());
    std::abort();
  } catch (const core::Error&) {
    // ConfigError, DataError, CheckpointError, IoError: the input was refused, by name.
  } catch (const std::exception& e) {
    std::fprintf(stderr, "FUZZ FINDING: untyped exception (%s) on outside input: %s\n", typeid(e).name(), e.what());
    std::abort();
  }
}

}  // namespace strata::fuzz
