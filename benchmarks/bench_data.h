// The data benchmarks' built-in input: a temporary synthetic BraTS dataset, packed at
// the requested sizes, removed on destruction. Packing prints one JSON line per size
// ({"bench": "pack", ...}: seconds per case, bytes per slice), so the benchmark that
// made it also reports pack speed.
#pragma once

#include "strata/dataprep/nifti.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace strata::bench {

class BenchData {
 public:
  // `cases` phantoms of `shape`, packed at each of `sizes` with `workers` threads
  // (keep_empty 0.1, val fraction 0.2, seed 0).
  BenchData(int64_t cases, const dataprep::Dims3& shape, const std::vector<int64_t>& sizes, int workers);
  ~BenchData();
  BenchData(const BenchData&) = delete;
  BenchData& operator=(const BenchData&) = delete;

  // The packed file of `size` x `size` slices.
  const std::string& file(int64_t size) const { return files_.at(size); }

 private:
  std::string dir_;
  std::map<int64_t, std::string> files_;
};

}  // namespace strata::bench
