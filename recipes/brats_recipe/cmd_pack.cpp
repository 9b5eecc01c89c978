// `brats_recipe pack --input DIR --out FILE.h5 [--size N] [--val-fraction F] [--seed S]
// [--keep-empty F] [--context K] [--folds K [--fold I] [--test-fraction F]] [--split-file F]
// [--workers N] [--overwrite]`: BraTS NIfTI cases to one HDF5 slice file (data/FORMAT.md),
// with a summary of cases, slices and class fractions per split, and of the folds.
// With --volumes: whole cases cropped to the brain (FORMAT.md, "Packed volumes"), for 3D
// tasks; --size, --keep-empty and --context, which shape slices, are refused.
#include "brats_recipe/cli.h"
#include "brats_recipe/data_summary.h"
#include "strata/core/log.h"
#include "strata/core/progress.h"
#include "strata/dataprep/brats_slices.h"
#include "strata/dataprep/packer.h"
#include "strata/dataprep/volume_packer.h"

#include <functional>
#include <optional>

namespace strata::recipes {

namespace {

// A progress bar created on the first case, when the total is known.
struct PackProgress {
  std::optional<core::ProgressBar> bar;
  void operator()(int64_t done, int64_t total) {
    if (!bar) bar.emplace("pack", total);
    bar->update(done);
  }
  void finish() {
    if (bar) bar->finish();
  }
};

std::vector<SplitRow> split_rows(const std::vector<dataprep::SplitSummary>& splits, bool volumes) {
  std::vector<SplitRow> rows;
  for (const auto& split : splits) {
    int64_t voxels = 0;
    for (int64_t v : split.class_voxels) voxels += v;
    rows.push_back({split.name, split.cases, volumes ? voxels : split.slices,
                    {split.class_voxels.begin(), split.class_voxels.end()}});
  }
  return rows;
}

void print_split_table(const std::vector<dataprep::SplitSummary>& splits, bool volumes) {
  const auto& names = dataprep::brats_slices::kClassNames;
  const std::vector<std::string> classes(names.begin(), names.end());
  core::info("pack: cases, {} and {} fraction of each class per split:\n{}", volumes ? "voxels" : "slices",
             volumes ? "voxel" : "pixel", split_table(classes, split_rows(splits, volumes), volumes ? "voxels" : "slices"));
}

// The folds of a cross-validation: cases (with necrosis) per fold and in test, and the
// cases a split file's K-fold list left out.
void print_pack_folds(const std::vector<dataprep::FoldSummary>& folds, const std::vector<std::string>& unlisted,
                      const dataprep::PackOptions& o) {
  if (!unlisted.empty()) {
    core::info("pack: {} case(s) of {} are in no entry of --split-file {}: held out of every fold as the 'test' "
               "split (fold -1): {}", unlisted.size(), o.input_dir, o.split_file, fmt::join(unlisted, ", "));
  }
  if (folds.empty()) return;
  std::vector<std::string> parts;
  int k = 0;
  for (const auto& f : folds) {
    k += f.fold >= 0 ? 1 : 0;
    parts.push_back(fmt::format("{}: {} ({} with necrosis)",
                                f.fold < 0 ? std::string("test") : fmt::format("fold {}", f.fold), f.cases,
                                f.necrosis_cases));
  }
  core::info("pack: {} folds{}, fold {} in val; cases: {}", k,
             o.split_file.empty() ? " stratified by necrosis" : " from the split file", o.fold, fmt::join(parts, ", "));
}

void pack_volumes(const CLI::App& cmd, const dataprep::PackOptions& o) {
  for (const char* slice_only : {"--size", "--keep-empty", "--context"}) {
    STRATA_CHECK_AS(ConfigError, cmd.count(slice_only) == 0,
                    "pack --volumes stores whole cases cropped to the brain: {} applies to slices only; drop it",
                    slice_only);
  }
  PackProgress progress;
  dataprep::VolumePackSummary s = dataprep::pack_volumes(o, std::ref(progress));
  progress.finish();
  core::info("pack: {} cases -> {} (volumes cropped to the brain, {} workers) in {:.1f} s: {:.2f} s/case wall, "
             "{:.2f} s/case per worker", s.cases, o.out_path, s.workers, s.seconds,
             s.seconds / static_cast<double>(s.cases), s.case_seconds / static_cast<double>(s.cases));
  print_split_table(s.splits, true);
  print_pack_folds(s.folds, s.unlisted, o);
  core::info("pack: {} voxels per channel, {} ({:.2f} bytes per voxel)", s.voxels,
             human_bytes(static_cast<double>(s.bytes)),
             s.voxels > 0 ? static_cast<double>(s.bytes) / static_cast<double>(s.voxels) : 0.0);
}

}  // namespace

void add_pack_command(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("pack", "pack BraTS NIfTI case folders into one HDF5 slice file, or volume file with --volumes (data/FORMAT.md)");
  auto o = std::make_shared<dataprep::PackOptions>();
  auto no_checksum = std::make_shared<bool>(false);
  cmd->add_option("--input", o->input_dir, "folder of BraTS2021_XXXXX/ case folders")->required();
  cmd->add_option("--out", o->out_path, "the .h5 file to write")->required();
  cmd->add_option("--size", o->size, "slices are resized to N x N")->capture_default_str()->check(CLI::Range(16, 1024));
  cmd->add_option("--val-fraction", o->val_fraction, "fraction of cases in the val split")
      ->capture_default_str()->check(CLI::Range(0.0, 0.99));
  cmd->add_option("--seed", o->seed, "split and slice-selection seed")->capture_default_str();
  cmd->add_option("--keep-empty", o->keep_empty, "fraction of tumour-free brain slices kept")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--context", o->context,
                  "also keep the (K-1)/2 neighbours on each side of every kept slice (in no split), for a K-slice "
                  "2.5D input (data.context K); odd")
      ->capture_default_str()->check(CLI::Range(1, 15));
  cmd->add_option("--workers", o->workers, "decoding threads (0: one per core)")->capture_default_str()->check(CLI::Range(0, 1024));
  cmd->add_option("--folds", o->folds,
                  "K-fold cross-validation by case, stratified by necrosis: every case gets one of K folds, all "
                  "recorded (data.fold picks one at training time); fold --fold in val")
      ->check(CLI::Range(2, 1000));
  cmd->add_option("--fold", o->fold, "the fold in val (with --folds), or the entry of a --split-file list")
      ->capture_default_str()->check(CLI::Range(0, 999));
  cmd->add_option("--test-fraction", o->test_fraction,
                  "with --folds: hold this fraction of the cases (stratified likewise) out of every fold, as a test "
                  "split")
      ->capture_default_str()->check(CLI::Range(0.0, 0.99));
  cmd->add_option("--split-file", o->split_file,
                  "JSON of train and val case names ({\"train\": [...], \"val\": [...]}, or a list of them as in "
                  "nnU-Net's splits_final.json: a list whose val lists partition its cases records every fold, and "
                  "cases in no entry go to test)");
  auto* overwrite = cmd->add_flag("--overwrite", o->force, "replace an existing --out file (default: an error)");
  cli.deprecate(cmd->add_flag("--force", o->force), overwrite, "--force is now --overwrite");
  cmd->add_flag("--no-checksum", *no_checksum, "do not store Fletcher-32 checksums per chunk");
  auto volumes = std::make_shared<bool>(false);
  cmd->add_flag("--volumes", *volumes,
                "pack whole cases cropped to the brain, in 3D chunks, for 3D tasks (data/FORMAT.md, \"Packed "
                "volumes\"); --size, --keep-empty and --context do not apply");
  cli.on(cmd, [cmd, o, no_checksum, volumes] {
    o->checksums = !*no_checksum;
    if (*volumes) return pack_volumes(*cmd, *o);
    PackProgress progress;
    dataprep::PackSummary s = dataprep::pack_dataset(*o, std::ref(progress));
    progress.finish();
    const double per_case = s.seconds / static_cast<double>(s.cases);
    core::info("pack: {} cases -> {} ({}x{}, {} workers) in {:.1f} s: {:.2f} s/case wall, {:.2f} s/case per worker",
               s.cases, o->out_path, o->size, o->size, s.workers, s.seconds, per_case,
               s.case_seconds / static_cast<double>(s.cases));
    print_split_table(s.splits, false);
    print_pack_folds(s.folds, s.unlisted, *o);
    core::info("pack: {} slices{}, {} ({} per slice)", s.slices,
               s.context_slices > 0 ? fmt::format(" ({} of them neighbours only, for --context {})", s.context_slices,
                                                  o->context)
                                    : "",
               human_bytes(static_cast<double>(s.bytes)),
               human_bytes(s.slices > 0 ? static_cast<double>(s.bytes) / static_cast<double>(s.slices) : 0.0));
  }, Cli::Gpu::kNever);
}

}  // namespace strata::recipes
