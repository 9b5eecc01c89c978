// Small, portable random numbers: the same seed gives the same phantoms, splits, slice
// selections, epoch permutations and augmentations on every platform and standard
// library (std::normal_distribution and std::shuffle are implementation-defined;
// these are not).
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>

namespace strata::data {

// SplitMix64 finaliser: a well-mixed 64-bit hash of a 64-bit value.
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Hash of a seed and a string (a case name), for per-case decisions that must not
// depend on the order cases are listed or processed in.
inline uint64_t hash_name(uint64_t seed, std::string_view name) {
  uint64_t h = mix64(seed ^ 0x5bd1e9955bd1e995ull);
  for (unsigned char c : name) h = mix64(h ^ c);
  return h;
}

// A uniform double in [0, 1) from the top 53 bits of a hash.
inline double unit_double(uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }

// SplitMix64 stream with uniform and normal draws.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() { return mix64(state_++ * 0x632be59bd9b4e019ull); }
  double uniform() { return unit_double(next()); }                              // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }   // [lo, hi)
  int64_t below(int64_t n) { return static_cast<int64_t>(uniform() * static_cast<double>(n)); }  // [0, n)
  bool chance(double p) { return uniform() < p; }
  // Box-Muller; one draw per call (the second value is discarded for simplicity).
  double normal() {
    double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  uint64_t state_;
};

}  // namespace strata::data
