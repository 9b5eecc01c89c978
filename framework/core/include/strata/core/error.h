// Typed errors and the STRATA_CHECK family of macros.
//
// Library code throws; only `main` turns an error into an exit status (and MPI_Abort
// when the world has more than one rank). Each error type names a subsystem, so a
// caller can tell bad user input (ConfigError, DataError) from a broken transport
// (CommError). Messages name the file, key or slice they are about; the macros
// append where the check sits (file:line) and which process raised it (rank, host).
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>
#include <string>

namespace strata::core {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
  // Short name of the error family, printed by `main` in front of the message.
  virtual const char* kind() const noexcept { return "error"; }
  // True when every rank throws this same error at the same point (decided from data
  // all ranks share, after a collective): `main` then prints it once, on rank 0, and
  // every rank exits 1 without MPI_Abort. Any other error aborts every rank.
  bool on_every_rank() const noexcept { return on_every_rank_; }
  void set_on_every_rank() noexcept { on_every_rank_ = true; }

 private:
  bool on_every_rank_ = false;
};

// Throws `error` marked as thrown identically on every rank (see Error::on_every_rank).
template <class E>
[[noreturn]] void throw_on_every_rank(E error) {
  error.set_on_every_rank();
  throw error;
}

#define STRATA_DEFINE_ERROR(Name, label)                                   \
  class Name : public Error {                                              \
   public:                                                                 \
    using Error::Error;                                                    \
    const char* kind() const noexcept override { return label; }           \
  }

STRATA_DEFINE_ERROR(ConfigError, "config error");          // bad YAML, key, value or CLI flag
STRATA_DEFINE_ERROR(DataError, "data error");              // bad NIfTI / HDF5 input, labels, shapes
STRATA_DEFINE_ERROR(CommError, "communication error");     // MPI, NCCL, rank consistency
STRATA_DEFINE_ERROR(CheckpointError, "checkpoint error");  // missing, corrupt or foreign checkpoint
STRATA_DEFINE_ERROR(IoError, "I/O error");                 // files that cannot be read or written
STRATA_DEFINE_ERROR(TrainingError, "training error");      // training diverged: NaN/Inf loss, weights or statistics
STRATA_DEFINE_ERROR(InternalError, "internal error");      // a broken invariant: a Strata bug

#undef STRATA_DEFINE_ERROR

// An error that several ranks agreed on (comm::World::agree): it keeps the kind of the
// error it stands for ("data error", ...).
class AgreedError : public Error {
 public:
  AgreedError(std::string kind, const std::string& message) : Error(message), kind_(std::move(kind)) {
    set_on_every_rank();
  }
  const char* kind() const noexcept override { return kind_.c_str(); }

 private:
  std::string kind_;
};

namespace detail {
// " (file.cpp:42, rank 1/2 on host)": where a check failed and which process saw it.
std::string error_origin(const char* file, int line);
}  // namespace detail

}  // namespace strata::core

// STRATA_THROW(DataError, "slice {} of {} has label {}", i, path, v);
#define STRATA_THROW(ErrorType, ...)                                                   \
  throw ::strata::core::ErrorType(fmt::format(__VA_ARGS__) +                           \
                                  ::strata::core::detail::error_origin(__FILE__, __LINE__))

// STRATA_CHECK_AS(ConfigError, lr > 0, "train.lr must be positive, got {}", lr);
#define STRATA_CHECK_AS(ErrorType, cond, ...) \
  do {                                        \
    if (!(cond)) {                            \
      STRATA_THROW(ErrorType, __VA_ARGS__);   \
    }                                         \
  } while (0)

// STRATA_CHECK(cond, "...") guards an internal invariant; failing it is a bug.
#define STRATA_CHECK(cond, ...) STRATA_CHECK_AS(InternalError, cond, "check `" #cond "` failed: " __VA_ARGS__)
