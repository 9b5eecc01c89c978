// `brats_recipe pack --input DIR --out FILE.h5 [--size N] [--val-fraction F] [--seed S]
// [--keep-empty F] [--context K] [--workers N] [--overwrite]`: BraTS NIfTI cases to one HDF5 slice file
// (data/FORMAT.md), with a summary of cases, slices and class fractions per split.
#include "brats_recipe/cli.h"
#include "brats_recipe/data_summary.h"
#include "strata/core/log.h"
#include "strata/core/progress.h"
#include "strata/dataprep/brats_slices.h"
#include "strata/dataprep/packer.h"

#include <optional>

namespace strata::recipes {

void add_pack_command(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("pack", "pack BraTS NIfTI case folders into one HDF5 slice file (data/FORMAT.md)");
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
  cmd->add_option("--folds", o->folds, "K-fold cross-validation by case: K folds, one of them in val (--fold)")
      ->check(CLI::Range(2, 1000));
  cmd->add_option("--fold", o->fold, "the fold in val (with --folds), or the entry of a --split-file list")
      ->capture_default_str()->check(CLI::Range(0, 999));
  cmd->add_option("--split-file", o->split_file,
                  "JSON of train and val case names ({\"train\": [...], \"val\": [...]}, or a list of them as in "
                  "nnU-Net's splits_final.json)");
  auto* overwrite = cmd->add_flag("--overwrite", o->force, "replace an existing --out file (default: an error)");
  cli.deprecate(cmd->add_flag("--force", o->force), overwrite, "--force is now --overwrite");
  cmd->add_flag("--no-checksum", *no_checksum, "do not store Fletcher-32 checksums per chunk");
  cli.on(cmd, [o, no_checksum] {
    o->checksums = !*no_checksum;
    std::optional<core::ProgressBar> bar;  // created on the first case, when the total is known
    dataprep::PackSummary s = dataprep::pack_dataset(*o, [&](int64_t done, int64_t total) {
      if (!bar) bar.emplace("pack", total);
      bar->update(done);
    });
    if (bar) bar->finish();
    const double per_case = s.seconds / static_cast<double>(s.cases);
    core::info("pack: {} cases -> {} ({}x{}, {} workers) in {:.1f} s: {:.2f} s/case wall, {:.2f} s/case per worker",
               s.cases, o->out_path, o->size, o->size, s.workers, s.seconds, per_case,
               s.case_seconds / static_cast<double>(s.cases));
    std::vector<SplitRow> rows;
    for (const auto& split : s.splits) {
      rows.push_back({split.name, split.cases, split.slices, {split.class_voxels.begin(), split.class_voxels.end()}});
    }
    const auto& names = dataprep::brats_slices::kClassNames;
    const std::vector<std::string> classes(names.begin(), names.end());
    core::info("pack: cases, slices and pixel fraction of each class per split:\n{}", split_table(classes, rows));
    core::info("pack: {} slices{}, {} ({} per slice)", s.slices,
               s.context_slices > 0 ? fmt::format(" ({} of them neighbours only, for --context {})", s.context_slices,
                                                  o->context)
                                    : "",
               human_bytes(static_cast<double>(s.bytes)),
               human_bytes(s.slices > 0 ? static_cast<double>(s.bytes) / static_cast<double>(s.slices) : 0.0));
  });
}

}  // namespace strata::recipes
