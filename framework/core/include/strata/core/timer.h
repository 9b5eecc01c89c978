// Wall-clock timers on the steady clock: a Stopwatch, and a ScopedTimer that adds
// the lifetime of a scope to an accumulator. Host time only; GPU work is timed with
// CUDA events where it matters (train/, benchmarks/).
#pragma once

#include <chrono>
#include <string>

namespace strata::core {

class Stopwatch {
 public:
  using Clock = std::chrono::steady_clock;
  Stopwatch() : start_(Clock::now()) {}
  void restart() { start_ = Clock::now(); }
  double seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }
  double millis() const { return seconds() * 1e3; }

 private:
  Clock::time_point start_;
};

// Adds the seconds between construction and destruction to `*total`.
class ScopedTimer {
 public:
  explicit ScopedTimer(double* total) : total_(total) {}
  ~ScopedTimer() { *total_ += watch_.seconds(); }
  ScopedTimer(const ScopedTimer&) = delete;
  ScopedTimer& operator=(const ScopedTimer&) = delete;

 private:
  double* total_;
  Stopwatch watch_;
};

// "1:02:03" for an hour or more, "02:03" below; negative or non-finite gives "--:--".
std::string format_duration(double seconds);

}  // namespace strata::core
