// `brats_recipe inspect --data FILE.h5 [--verify] [--export-splits OUT.json]`: a packed
// file's summary (format version, size, cases and slices per split, class fractions, the
// folds of a cross-validation, provenance); --verify reads every chunk through HDF5 and
// checks its checksum, every label and the recorded statistics; --export-splits writes
// the file's folds (or its train/val) as nnU-Net's splits_final.json. A file of packed
// volumes gets its own summary (cases, shapes, splits) and check.
#include "brats_recipe/cli.h"
#include "brats_recipe/data_summary.h"
#include "strata/core/log.h"
#include "strata/core/progress.h"
#include "strata/data/slice_store.h"
#include "strata/data/volume_store.h"
#include "strata/dataprep/brats_slices.h"
#include "strata/dataprep/packer.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

namespace strata::recipes {

namespace {

void print_labels(const data::StoreInfo& info) {
  std::vector<std::string> parts;
  for (size_t c = 0; c < info.class_names.size(); ++c) {
    parts.push_back(fmt::format("{} = {} (BraTS {})", c, info.class_names[c], info.label_source_values[c]));
  }
  fmt::print("  labels: {}\n", fmt::join(parts, ", "));
}

// The fold table of a file with folds: per fold (then test) its cases, their split
// slices or voxels (`items_of_case`), and how many have necrosis, the class folds are
// stratified by.
void print_inspected_folds(const data::StoreInfo& info, const data::CaseFoldTable& folds,
                           const std::vector<int64_t>& items_of_case, const char* unit) {
  if (folds.folds == 0) return;
  const auto classes = static_cast<int64_t>(info.class_names.size());
  const int64_t marked = dataprep::brats_slices::kNecrosisClass;
  std::vector<FoldRow> rows(static_cast<size_t>(folds.folds) + 1);
  for (size_t k = 0; k < rows.size(); ++k) rows[k].fold = k + 1 < rows.size() ? static_cast<int>(k) : -1;
  for (size_t c = 0; c < folds.fold_of.size(); ++c) {
    const int32_t f = folds.fold_of[c];
    FoldRow& row = f < 0 ? rows.back() : rows[static_cast<size_t>(f)];
    ++row.cases;
    row.items += items_of_case[c];
    row.marked_cases += marked < classes && folds.class_voxels[c * static_cast<size_t>(classes) + marked] > 0 ? 1 : 0;
  }
  if (rows.back().cases == 0) rows.pop_back();
  fmt::print("  folds: {} by case (`--set data.fold=k` trains on the others and validates fold k):\n{}", folds.folds,
             fold_table(rows, folds.val_fold, unit, marked < classes ? info.class_names[marked] : "class 1"));
}

// --export-splits: the folds as nnU-Net's splits_final.json, one entry per fold; a file
// without folds gives one entry, its train and val.
void export_inspected_splits(const std::string& out, const std::vector<std::string>& names,
                             const data::CaseFoldTable& folds, const std::vector<int64_t>& train,
                             const std::vector<int64_t>& val) {
  std::vector<dataprep::SplitEntry> entries;
  if (folds.folds > 0) {
    entries = dataprep::split_entries(names, {static_cast<int>(folds.folds), folds.fold_of});
  } else {
    dataprep::SplitEntry& e = entries.emplace_back();
    for (int64_t c : train) e.train.push_back(names[static_cast<size_t>(c)]);
    for (int64_t c : val) e.val.push_back(names[static_cast<size_t>(c)]);
    std::sort(e.train.begin(), e.train.end());
    std::sort(e.val.begin(), e.val.end());
  }
  dataprep::write_split_file(out, entries);
  fmt::print("wrote {}: {} (nnU-Net's splits_final.json; `pack --split-file {}` reads it back)\n", out,
             folds.folds > 0 ? fmt::format("{} folds", folds.folds) : std::string("its train and val, one entry"),
             out);
}

void inspect_volumes(const std::string& path, bool verify, const std::string& export_to) {
  data::VolumeStore store(path);
  const data::StoreInfo& info = store.info();
  data::Index3 lo{INT64_MAX, INT64_MAX, INT64_MAX}, hi{0, 0, 0};
  int64_t voxels = 0;
  for (int64_t c = 0; c < store.num_cases(); ++c) {
    const data::Index3& s = store.volume_case(c).shape;
    for (size_t a = 0; a < 3; ++a) lo[a] = std::min(lo[a], s[a]), hi[a] = std::max(hi[a], s[a]);
    voxels += s[0] * s[1] * s[2];
  }
  fmt::print("{}: Strata volume file ({}), format version {}\n", store.path(), info.format, info.format_version);
  fmt::print("  written by {} from {}\n", info.tool, info.source);
  fmt::print("  {} cases of {} channels ({}), shapes D x H x W from {} to {} ({} voxels per channel); checksums: {}\n",
             store.num_cases(), store.channels(), fmt::join(info.modalities, ", "), fmt::join(lo, " x "),
             fmt::join(hi, " x "), voxels, info.checksums ? "fletcher32 per chunk" : "none");
  print_labels(info);
  std::vector<SplitRow> rows;
  for (const auto& name : store.split_names()) {
    const data::VolumeSplit& s = store.split(name);
    int64_t n = 0;
    for (int64_t v : s.class_voxels) n += v;
    rows.push_back({s.name, static_cast<int64_t>(s.cases.size()), n, s.class_voxels});
  }
  fmt::print("{}", split_table(info.class_names, rows, "voxels"));
  std::vector<int64_t> case_voxels;
  for (int64_t c = 0; c < store.num_cases(); ++c) {
    const data::Index3& s = store.volume_case(c).shape;
    case_voxels.push_back(s[0] * s[1] * s[2]);
  }
  print_inspected_folds(info, store.folds(), case_voxels, "voxels");
  fmt::print("  normalisation: {}\n  resize: {}\n  orientation: {}\n  split: {}\n", info.normalisation, info.resize,
             info.orientation, info.split_method);
  std::vector<std::string> names;
  for (int64_t c = 0; c < store.num_cases(); ++c) names.push_back(store.volume_case(c).name);
  if (!export_to.empty()) {
    const bool folds = store.folds().folds > 0;
    export_inspected_splits(export_to, names, store.folds(), folds ? std::vector<int64_t>{} : store.split("train").cases,
                            folds ? std::vector<int64_t>{} : store.split("val").cases);
  }
  std::fflush(stdout);
  if (!verify) return;
  core::ProgressBar bar("verify", store.num_cases());
  data::VerifyReport r = store.verify([&](int64_t done, int64_t) { bar.update(done); });
  bar.finish();
  fmt::print("verify: OK: {} chunks, {} checked in {:.2f} s (Fletcher-32 of every chunk, labels, class locations, "
             "split statistics{}); on open: metadata checksum, shapes, crop boxes, class locations inside their "
             "volumes{}\n", r.chunks, human_bytes(static_cast<double>(r.bytes)), r.seconds,
             r.folds ? ", class voxels per case" : "", r.folds ? ", case folds against the splits" : "");
}

// A file that is_volume_file cannot read is left to SliceStore, whose errors name the
// problem as they always have.
bool volume_file(const std::string& path) {
  try {
    return data::is_volume_file(path);
  } catch (const core::DataError&) {
    return false;
  }
}

}  // namespace

void add_inspect_command(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("inspect", "summarise a packed .h5 slice or volume file; --verify checks every chunk");
  auto path = std::make_shared<std::string>();
  auto verify = std::make_shared<bool>(false);
  auto export_to = std::make_shared<std::string>();
  auto* data = cmd->add_option("--data", *path, "the packed .h5 file")->required();
  cli.deprecate(cmd->add_option("file", *path), data, "`inspect FILE` is now `inspect --data FILE`");
  cmd->add_flag("--verify", *verify, "read every chunk and check checksums, labels and statistics");
  cmd->add_option("--export-splits", *export_to,
                  "write the file's folds (or its train and val) as nnU-Net's splits_final.json, for pack --split-file");
  cli.on(cmd, [path, verify, export_to] {
    if (volume_file(*path)) return inspect_volumes(*path, *verify, *export_to);
    data::SliceStore store(*path);
    const data::StoreInfo& info = store.info();
    std::vector<SplitRow> rows;
    for (const auto& name : store.split_names()) {
      const data::SplitInfo& s = store.split_info(name);
      rows.push_back({s.name, s.cases, static_cast<int64_t>(s.slices.size()), s.class_voxels});
    }
    const double per_slice = store.num_slices() > 0 ? static_cast<double>(store.file_bytes()) /
                                                          static_cast<double>(store.num_slices()) : 0.0;
    fmt::print("{}: Strata slice file, format version {}\n", store.path(), info.format_version);
    fmt::print("  written by {} from {}\n", info.tool, info.source);
    fmt::print("  {} slices of {} x {} x {} ({}), {} cases; {} ({} per slice); checksums: {}\n", store.num_slices(),
               store.channels(), store.height(), store.width(), fmt::join(info.modalities, ", "), store.num_cases(),
               human_bytes(static_cast<double>(store.file_bytes())), human_bytes(per_slice),
               info.checksums ? "fletcher32 per chunk" : "none");
    print_labels(info);
    fmt::print("{}", split_table(info.class_names, rows));
    std::vector<int64_t> case_slices(static_cast<size_t>(store.num_cases()), 0);
    for (const auto& name : store.split_names()) {
      for (int32_t c : store.cases_of(store.split(name))) ++case_slices[static_cast<size_t>(c)];
    }
    print_inspected_folds(info, store.folds(), case_slices, "slices");
    fmt::print("  normalisation: {}\n  resize: {}\n  orientation: {}\n  selection: {} (seed {}, val fraction {})\n",
               info.normalisation, info.resize, info.orientation, info.selection, info.seed, info.val_fraction);
    if (!info.split_method.empty()) fmt::print("  split: {}\n", info.split_method);
    for (const auto& name : store.split_names()) {  // each split's cases, by name
      std::set<std::string> names;
      for (int32_t c : store.cases_of(store.split(name))) names.insert(store.case_names()[static_cast<size_t>(c)]);
      fmt::print("  {} cases ({}): {}\n", name, names.size(), fmt::join(names, " "));
    }
    if (store.has_case_sources()) {
      const data::CaseSource& s = store.case_source(0);
      fmt::print("  source geometry recorded per case (format version 2 and later), e.g. {}: {}x{}x{} voxels of {:.4g} mm, "
                 "square crop of side {} at ({}, {}), resize x{:.4g}\n", store.case_names()[0], s.dims[0], s.dims[1],
                 s.dims[2], fmt::join(s.spacing, " x "), s.side, s.crop_i, s.crop_j, s.scale);
    }
    if (!export_to->empty()) {
      auto cases_in = [&](const char* split) {
        std::set<int64_t> in;
        if (store.folds().folds == 0) {
          for (int32_t c : store.cases_of(store.split(split))) in.insert(c);
        }
        return std::vector<int64_t>(in.begin(), in.end());
      };
      export_inspected_splits(*export_to, store.case_names(), store.folds(), cases_in("train"), cases_in("val"));
    }
    std::fflush(stdout);
    if (*verify) {
      core::ProgressBar bar("verify", store.num_slices());
      data::VerifyReport r = store.verify([&](int64_t done, int64_t) { bar.update(done); });
      bar.finish();
      fmt::print("verify: OK: {} chunks, {} checked in {:.2f} s (Fletcher-32 of every chunk, labels, split "
                 "statistics{}); on open: {}, chunk index ({} entries: every slice once, no other, none sharing "
                 "bytes), unique case names{}\n", r.chunks, human_bytes(static_cast<double>(r.bytes)), r.seconds,
                 r.folds ? ", class pixels per case" : "",
                 r.metadata_checksum ? "metadata checksum" : "case-name heap references (no metadata checksum before "
                                                             "format version 3)", r.index_entries,
                 r.folds ? ", case folds against the splits" : "");
    }
  }, Cli::Gpu::kNever);
}

}  // namespace strata::recipes
