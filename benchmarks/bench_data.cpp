// The data benchmarks' temporary synthetic dataset (see bench_data.h).
#include "bench_data.h"

#include "strata/core/error.h"
#include "strata/dataprep/files.h"
#include "strata/dataprep/packer.h"
#include "strata/dataprep/synth.h"

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>

namespace strata::bench {

BenchData::BenchData(int64_t cases, const dataprep::Dims3& shape, const std::vector<int64_t>& sizes, int workers) {
  std::string pattern = (std::filesystem::temp_directory_path() / "strata-bench-XXXXXX").string();
  if (!::mkdtemp(pattern.data())) STRATA_THROW(IoError, "cannot create a temporary folder in {}", pattern);
  dir_ = pattern;
  dataprep::SynthOptions so;
  so.out_dir = dir_ + "/cases";
  so.cases = cases;
  so.shape = shape;
  so.workers = workers;
  dataprep::SynthSummary ss = dataprep::synthesize_dataset(so);
  fmt::print("{{\"bench\": \"synth\", \"cases\": {}, \"shape\": \"{}x{}x{}\", \"workers\": {}, \"seconds\": {:.3f}, "
             "\"s_per_case\": {:.3f}}}\n", ss.cases, shape[0], shape[1], shape[2], ss.workers, ss.seconds,
             ss.seconds / static_cast<double>(ss.cases));
  for (int64_t size : sizes) {
    dataprep::PackOptions po;
    po.input_dir = so.out_dir;
    po.out_path = fmt::format("{}/bench_{}.h5", dir_, size);
    po.size = size;
    po.workers = workers;
    dataprep::PackSummary ps = dataprep::pack_dataset(po);
    fmt::print("{{\"bench\": \"pack\", \"size\": {}, \"cases\": {}, \"shape\": \"{}x{}x{}\", \"workers\": {}, "
               "\"slices\": {}, \"seconds\": {:.3f}, \"s_per_case\": {:.3f}, \"worker_s_per_case\": {:.3f}, "
               "\"bytes\": {}, \"bytes_per_slice\": {:.0f}}}\n",
               size, ps.cases, shape[0], shape[1], shape[2], ps.workers, ps.slices, ps.seconds,
               ps.seconds / static_cast<double>(ps.cases), ps.case_seconds / static_cast<double>(ps.cases), ps.bytes,
               static_cast<double>(ps.bytes) / static_cast<double>(std::max<int64_t>(ps.slices, 1)));
    std::fflush(stdout);
    files_[size] = po.out_path;
  }
}

BenchData::~BenchData() { dataprep::remove_tree(dir_); }

}  // namespace strata::bench
