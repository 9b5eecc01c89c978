// Writing a synthetic BraTS-layout dataset (see synth.h).
#include "strata/dataprep/synth.h"

#include "strata/core/error.h"
#include "strata/dataprep/brats_slices.h"
#include "strata/dataprep/files.h"
#include "strata/dataprep/parallel.h"
#include "strata/dataprep/phantom.h"
#include "strata/data/random.h"

#include <nifti1.h>

#include <filesystem>

namespace strata::dataprep {

namespace fs = std::filesystem;
using data::mix64;
using core::DataError;
using core::IoError;

namespace {

struct CaseResult {
  int64_t bytes = 0;
  int lesions = 0;
  bool necrosis = false;
  std::array<int64_t, 4> label_voxels{};
};

// Removes a folder on scope exit unless released.
class FolderGuard {
 public:
  explicit FolderGuard(fs::path path) : path_(std::move(path)) {}
  ~FolderGuard() {
    if (!path_.empty()) remove_tree(path_.string());
  }
  void release() { path_.clear(); }

 private:
  fs::path path_;
};

CaseResult write_case(const SynthOptions& o, int64_t index) {
  const std::string name = synth_case_name(index);
  Phantom ph = make_phantom(o.shape, mix64(mix64(o.seed) ^ static_cast<uint64_t>(index)), o.difficulty);
  const fs::path out(o.out_dir);
  const fs::path final_dir = out / name, tmp_dir = out / ("." + name + ".partial");
  std::error_code ec;
  remove_tree(tmp_dir.string());
  if (!fs::create_directory(tmp_dir, ec)) STRATA_THROW(IoError, "{}: cannot create folder: {}", tmp_dir.string(), ec.message());
  FolderGuard guard(tmp_dir);

  CaseResult result;
  const std::array<double, 3> spacing{1.0, 1.0, 1.0};
  NiftiWriteOptions modality_opts;
  modality_opts.datatype = o.float32 ? DT_FLOAT32 : DT_INT16;
  modality_opts.gzip_level = o.gzip_level;
  std::vector<fs::path> files;
  for (size_t m = 0; m < ph.modalities.size(); ++m) {
    files.push_back(tmp_dir / fmt::format("{}_{}.nii.gz", name, brats_slices::kModalities[m]));
    write_nifti(files.back().string(), ph.dims, spacing, ph.modalities[m].data(), modality_opts);
  }
  std::vector<float> seg(ph.seg.begin(), ph.seg.end());
  for (uint8_t v : ph.seg) ++result.label_voxels[v == 4 ? 3 : v];
  NiftiWriteOptions seg_opts;
  seg_opts.datatype = DT_UINT8;
  seg_opts.gzip_level = o.gzip_level;
  files.push_back(tmp_dir / fmt::format("{}_seg.nii.gz", name));
  write_nifti(files.back().string(), ph.dims, spacing, seg.data(), seg_opts);
  for (const auto& f : files) result.bytes += static_cast<int64_t>(fs::file_size(f, ec));
  result.lesions = ph.lesions;
  result.necrosis = ph.necrosis;

  // Swap the finished case into place; a previous version (--overwrite) goes last.
  fs::path old_dir;
  if (fs::exists(final_dir)) {
    old_dir = out / ("." + name + ".old");
    remove_tree(old_dir.string());
    fs::rename(final_dir, old_dir, ec);
    if (ec) STRATA_THROW(IoError, "{}: cannot replace: {}", final_dir.string(), ec.message());
  }
  fs::rename(tmp_dir, final_dir, ec);
  if (ec) STRATA_THROW(IoError, "{}: cannot rename into place: {}", final_dir.string(), ec.message());
  guard.release();
  if (!old_dir.empty()) remove_tree(old_dir.string());
  return result;
}

}  // namespace

std::string synth_case_name(int64_t index) { return fmt::format("BraTS2021_{:05d}", index); }

SynthSummary synthesize_dataset(const SynthOptions& o, const std::function<void(int64_t, int64_t)>& progress) {
  STRATA_CHECK_AS(DataError, o.cases >= 1, "synth: --cases must be at least 1, got {}", o.cases);
  STRATA_CHECK_AS(DataError, !o.out_dir.empty(), "synth: --out is empty");
  for (int64_t d : o.shape) {
    STRATA_CHECK_AS(DataError, d >= 16 && d <= 1024, "synth: every --shape axis must be in [16, 1024], got {}x{}x{}",
                    o.shape[0], o.shape[1], o.shape[2]);
  }
  std::error_code ec;
  if (fs::exists(o.out_dir, ec) && !fs::is_directory(o.out_dir, ec)) {
    STRATA_THROW(IoError, "synth --out '{}' is a file; expected a folder to write the cases into", o.out_dir);
  }
  fs::create_directories(o.out_dir, ec);
  if (ec || !fs::is_directory(o.out_dir)) {
    STRATA_THROW(IoError, "{}: cannot create the output folder{}", o.out_dir, ec ? ": " + ec.message() : "");
  }
  if (!o.force) {
    for (int64_t c = 0; c < o.cases; ++c) {
      fs::path existing = fs::path(o.out_dir) / synth_case_name(c);
      if (fs::exists(existing)) {
        STRATA_THROW(IoError, "{} already exists; pass --overwrite to replace the cases in {}", existing.string(),
                     o.out_dir);
      }
    }
  }

  auto start = std::chrono::steady_clock::now();
  SynthSummary summary;
  int workers = resolve_workers(o.workers, o.cases);
  summary.workers = workers;
  run_ordered<CaseResult>(
      o.cases, workers, 2 * workers, [&](int64_t i) { return write_case(o, i); },
      [&](int64_t i, CaseResult&& r) {
        summary.cases += 1;
        summary.bytes += r.bytes;
        summary.multi_lesion_cases += r.lesions > 1;
        summary.no_necrosis_cases += !r.necrosis;
        for (size_t c = 0; c < 4; ++c) summary.label_voxels[c] += r.label_voxels[c];
        if (progress) progress(i + 1, o.cases);
      });
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace strata::dataprep
