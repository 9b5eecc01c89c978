// Packing BraTS cases into the HDF5 slice format (see packer.h and data/FORMAT.md).
#include "strata/dataprep/packer.h"

#include "h5_writer.h"
#include "strata/core/build_info.h"
#include "strata/core/error.h"
#include "strata/core/files.h"
#include "strata/core/intraop.h"
#include "strata/data/format.h"
#include "strata/data/h5.h"
#include "strata/data/metadata_checksum.h"
#include "strata/dataprep/brats_slices.h"
#include "strata/dataprep/parallel.h"
#include "strata/data/random.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>

namespace strata::dataprep {

namespace fs = std::filesystem;
using data::hash_name;
using data::mix64;
using data::unit_double;
namespace fmt_ = data::format;
namespace brats = brats_slices;
using core::DataError;
using core::IoError;

namespace {


std::string case_file(const fs::path& dir, const std::string& name, const char* suffix, bool required = true) {
  fs::path gz = dir / fmt::format("{}_{}.nii.gz", name, suffix);
  if (fs::exists(gz)) return gz.string();
  fs::path plain = dir / fmt::format("{}_{}.nii", name, suffix);
  if (fs::exists(plain)) return plain.string();
  if (!required) return "";
  STRATA_THROW(DataError, "case {}: missing file {} (each case folder holds {}_{{t1,t1ce,t2,flair,seg}}.nii.gz)",
               name, gz.string(), name);
}

// The file being written: extendible, chunked images and labels, then metadata.
class SliceWriter {
 public:
  SliceWriter(const std::string& path, int64_t size, bool checksums) : out_(path, checksums), size_(size) {
    data::h5::Lock lock;
    half_ = data::h5::float16_type();
    const auto s = static_cast<hsize_t>(size);
    images_ = out_.create(out_.file(), fmt_::kImages, half_.get(), {0, brats::kChannels, s, s},
                          {1, brats::kChannels, s, s}, true);
    labels_ = out_.create(out_.file(), fmt_::kLabels, H5T_STD_U8LE, {0, s, s}, {1, s, s}, true);
  }

  int64_t slices() const { return n_; }

  void append(const PreparedCase& c) {
    const auto k = static_cast<hsize_t>(c.z.size());
    if (k == 0) return;
    const auto s = static_cast<hsize_t>(size_);
    out_.append_rows(images_.get(), half_.get(), n_, {k, brats::kChannels, s, s}, c.images.data());
    out_.append_rows(labels_.get(), H5T_NATIVE_UINT8, n_, {k, s, s}, c.labels.data());
    n_ += static_cast<int64_t>(k);
  }

  // Writes the per-slice and per-case metadata, the splits and the attributes, and
  // closes the file.
  void finish(const std::vector<int32_t>& slice_case, const std::vector<int32_t>& slice_z,
              const std::vector<std::string>& case_names, const std::vector<CaseGeometry>& geometry,
              const CaseSplits& case_splits, const std::vector<std::array<int64_t, 4>>& case_class_voxels,
              const std::vector<SplitSummary>& splits, const std::vector<std::vector<int64_t>>& split_slices,
              const PackOptions& o) {
    data::h5::Lock lock;
    out_.write_vector(out_.file(), fmt_::kSliceCase, H5T_STD_I32LE, H5T_NATIVE_INT32, slice_case.data(),
                      slice_case.size());
    out_.write_vector(out_.file(), fmt_::kSliceZ, H5T_STD_I32LE, H5T_NATIVE_INT32, slice_z.data(), slice_z.size());
    out_.write_names(fmt_::kCaseNames, case_names);
    write_geometry(geometry);
    if (case_splits.folds.folds > 0) out_.write_case_folds(case_splits.folds, case_class_voxels);
    data::h5::Handle group = out_.group(out_.file(), fmt_::kSplits);
    for (size_t s = 0; s < splits.size(); ++s) {
      data::h5::Handle ds = out_.write_vector(group.get(), splits[s].name.c_str(), H5T_STD_I64LE, H5T_NATIVE_INT64,
                                              split_slices[s].data(), split_slices[s].size());
      data::h5::write_attr(ds.get(), fmt_::kAttrSplitCases, splits[s].cases);
      data::h5::write_attr(ds.get(), fmt_::kAttrSplitClassVoxels,
                           std::vector<int64_t>(splits[s].class_voxels.begin(), splits[s].class_voxels.end()));
    }
    write_attributes(o, case_splits.folds.folds);
    out_.close({&images_, &labels_, &half_});
  }

  ~SliceWriter() {
    data::h5::Lock lock;
    images_.reset();
    labels_.reset();
    half_.reset();
  }

 private:
  // Format version 2: each case's source geometry (FORMAT.md, "Mapping slices back").
  void write_geometry(const std::vector<CaseGeometry>& g) {
    const auto c = static_cast<hsize_t>(g.size());
    std::vector<int32_t> crop;
    std::vector<double> scale;
    for (const auto& x : g) {
      crop.insert(crop.end(), {static_cast<int32_t>(x.crop_i), static_cast<int32_t>(x.crop_j),
                               static_cast<int32_t>(x.side)});
      scale.push_back(x.scale());
    }
    out_.write_source_geometry(g);
    out_.write_array(fmt_::kCaseCrop, H5T_STD_I32LE, H5T_NATIVE_INT32, crop.data(), {c, 3});
    out_.write_array(fmt_::kCaseScale, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, scale.data(), {c});
  }

  void write_attributes(const PackOptions& o, int folds) {
    using data::h5::write_attr;
    hid_t f = out_.file();
    write_attr(f, fmt_::kAttrFormat, std::string(brats::kFormatName));
    write_attr(f, fmt_::kAttrVersion, fmt_::kFormatVersion);
    write_attr(f, fmt_::kAttrHeight, size_);
    write_attr(f, fmt_::kAttrWidth, size_);
    out_.write_label_attributes();
    write_attr(f, fmt_::kAttrResize,
               fmt::format("crop to the case's in-plane brain bounding box, zero-pad to a centred square, resize "
                           "to {0}x{0}: images bilinear with antialiasing, labels nearest-exact", size_));
    write_attr(f, fmt_::kAttrOrientation,
               std::string("as stored: slices are planes of constant third voxel index k; rows follow j, columns "
                           "follow i; qform/sform not applied"));
    std::string selection = fmt::format("every slice with tumour, plus a seeded fraction {} of tumour-free slices "
                                        "with at least {}% brain pixels", o.keep_empty, 100 * kMinBrainFraction);
    if (o.context > 1) {
      selection += fmt::format("; and, in no split, the {} neighbour(s) on each side of those that show any brain",
                               (o.context - 1) / 2);
    }
    write_attr(f, fmt_::kAttrSelection, selection);
    out_.write_provenance_attributes(o);
    write_attr(f, fmt_::kAttrKeepEmpty, o.keep_empty);
    write_attr(f, fmt_::kAttrSplitMethod, split_method(o, o.split_file.empty() ? 0 : folds));
    if (o.context > 1) write_attr(f, fmt_::kAttrContext, o.context);  // absent: 1, as in every older file
    out_.write_metadata_checksum();  // last: it covers everything above (metadata_checksum.h)
  }

  H5Writer out_;
  int64_t size_;
  int64_t n_ = 0;
  data::h5::Handle half_, images_, labels_;
};

}  // namespace

std::vector<CaseFiles> find_cases(const std::string& input_dir, bool require_seg) {
  std::error_code ec;
  core::require_folder<core::DataError>(input_dir, "--input (a folder of BraTS case folders)");
  std::vector<std::string> names;
  fs::path root = input_dir;
  const std::string self = fs::path(input_dir).lexically_normal().filename().string().empty()
                               ? fs::path(input_dir).lexically_normal().parent_path().filename().string()
                               : fs::path(input_dir).lexically_normal().filename().string();
  if (!require_seg && !case_file(root, self, "t1ce", false).empty()) {  // one case folder
    CaseFiles c;
    c.name = self;
    for (size_t m = 0; m < 4; ++m) c.modalities[m] = case_file(root, self, brats::kModalities[m]);
    c.seg = case_file(root, self, "seg", false);
    return {c};
  }
  for (const auto& entry : fs::directory_iterator(input_dir, ec)) {
    std::string name = entry.path().filename().string();
    if (entry.is_directory() && !name.empty() && name[0] != '.') names.push_back(name);
  }
  if (names.empty()) {
    STRATA_THROW(DataError, "{}: no case folders (expected BraTS2021_XXXXX/ folders holding "
                 "BraTS2021_XXXXX_{{t1,t1ce,t2,flair,seg}}.nii.gz)", input_dir);
  }
  std::sort(names.begin(), names.end());
  std::vector<CaseFiles> cases;
  for (const auto& name : names) {
    fs::path dir = fs::path(input_dir) / name;
    CaseFiles c;
    c.name = name;
    for (size_t m = 0; m < 4; ++m) c.modalities[m] = case_file(dir, name, brats::kModalities[m]);
    c.seg = case_file(dir, name, "seg", require_seg);
    cases.push_back(std::move(c));
  }
  return cases;
}

std::vector<uint8_t> remap_labels(const Volume& seg, const std::string& case_name, const std::string& seg_path) {
  std::vector<uint8_t> out(seg.data.size());
  for (size_t i = 0; i < seg.data.size(); ++i) {
    float v = seg.data[i];
    uint8_t c;
    if (v == 0.0f) c = 0;
    else if (v == 1.0f) c = 1;
    else if (v == 2.0f) c = 2;
    else if (v == 4.0f) c = 3;
    else {
      int64_t nx = seg.dims[0], ny = seg.dims[1];
      auto at = static_cast<int64_t>(i);
      STRATA_THROW(DataError, "case {}: {} holds label value {} at voxel ({}, {}, {}); BraTS labels are 0, 1, 2 and 4",
                   case_name, seg_path, v, at % nx, (at / nx) % ny, at / (nx * ny));
    }
    out[i] = c;
  }
  return out;
}

std::vector<int> assign_splits(const std::vector<std::string>& case_names, double val_fraction, uint64_t seed) {
  const auto c = static_cast<int64_t>(case_names.size());
  int64_t n_val = std::llround(val_fraction * static_cast<double>(c));
  if (val_fraction > 0 && c >= 2) n_val = std::clamp<int64_t>(n_val, 1, c - 1);
  if (c < 2) n_val = 0;
  std::vector<std::pair<uint64_t, std::string>> order;
  for (int64_t i = 0; i < c; ++i) order.emplace_back(hash_name(seed, case_names[static_cast<size_t>(i)]), case_names[static_cast<size_t>(i)]);
  std::sort(order.begin(), order.end());
  std::vector<int> split(static_cast<size_t>(c), 0);
  for (int64_t r = 0; r < n_val; ++r) {
    auto it = std::find(case_names.begin(), case_names.end(), order[static_cast<size_t>(r)].second);
    split[static_cast<size_t>(it - case_names.begin())] = 1;
  }
  return split;
}

CaseVolumes read_case(const CaseFiles& files) {
  CaseVolumes v;
  for (size_t m = 0; m < 4; ++m) {
    try {
      v.modalities[m] = read_nifti(files.modalities[m]);
    } catch (const DataError& e) {  // say which case and modality; the message names the file
      throw DataError(fmt::format("case {}, modality {}: {}", files.name, brats::kModalities[m], e.what()));
    }
  }
  const Dims3 dims = v.modalities[0].dims;
  auto shape = [](const Dims3& d) { return fmt::format("{}x{}x{}", d[0], d[1], d[2]); };
  for (size_t m = 1; m < 4; ++m) {
    if (v.modalities[m].dims != dims) {
      STRATA_THROW(DataError, "case {}: {} is {} but {} is {}; all modalities and seg must match", files.name,
                   files.modalities[m], shape(v.modalities[m].dims), files.modalities[0], shape(dims));
    }
  }
  if (!files.seg.empty()) {
    Volume seg = read_nifti(files.seg);
    if (seg.dims != dims) {
      STRATA_THROW(DataError, "case {}: {} is {} but {} is {}; all modalities and seg must match", files.name,
                   files.seg, shape(seg.dims), files.modalities[0], shape(dims));
    }
    v.labels = remap_labels(seg, files.name, files.seg);
  }
  return v;
}

int64_t held_out_cases(int64_t cases, double test_fraction) {
  if (test_fraction <= 0) return 0;
  return std::max<int64_t>(1, std::llround(test_fraction * static_cast<double>(cases)));
}

std::vector<int32_t> stratified_folds(const std::vector<std::string>& case_names, const std::vector<uint8_t>& necrosis,
                                      int folds, double test_fraction, uint64_t seed) {
  STRATA_CHECK(necrosis.size() == case_names.size(), "stratified_folds: {} necrosis flags for {} cases",
               necrosis.size(), case_names.size());
  STRATA_CHECK_AS(DataError, test_fraction >= 0 && test_fraction < 1, "pack: --test-fraction must be in [0, 1), got {}",
                  test_fraction);
  const auto c = static_cast<int64_t>(case_names.size());
  const int64_t held = held_out_cases(c, test_fraction);
  STRATA_CHECK_AS(DataError, folds >= 2 && folds <= c - held, "pack: --folds {} needs 2 <= K <= the {} cases{}", folds,
                  c - held,
                  held > 0 ? fmt::format(" left once --test-fraction {} holds {} of {} out", test_fraction, held, c)
                           : std::string());
  // The two strata, each in seeded hash order (by index on a tie: the names are sorted).
  std::array<std::vector<std::pair<uint64_t, size_t>>, 2> strata;
  for (size_t i = 0; i < case_names.size(); ++i) {
    strata[necrosis[i] ? 0 : 1].emplace_back(hash_name(seed, case_names[i]), i);
  }
  for (auto& s : strata) std::sort(s.begin(), s.end());
  // Each stratum's share of the test cases, by largest remainder, so the shares sum to `held`.
  std::array<int64_t, 2> test{};
  std::array<int64_t, 2> remainder{};
  int64_t given = 0;
  for (size_t s = 0; s < 2; ++s) {
    const auto n = static_cast<int64_t>(strata[s].size());
    test[s] = held * n / std::max<int64_t>(c, 1);
    remainder[s] = held * n % std::max<int64_t>(c, 1);
    given += test[s];
  }
  // The two fractional parts sum to below 2 cases: at most one is left to give.
  if (given < held) ++test[remainder[1] > remainder[0] ? 1 : 0];
  std::vector<int32_t> fold_of(case_names.size(), data::format::kTestFold);
  int64_t dealt = 0;  // continues across strata: overall sizes stay within one too
  for (size_t s = 0; s < 2; ++s) {
    for (size_t r = static_cast<size_t>(test[s]); r < strata[s].size(); ++r) {
      fold_of[strata[s][r].second] = static_cast<int32_t>(dealt++ % folds);
    }
  }
  return fold_of;
}

std::vector<int> splits_of_folds(const std::vector<int32_t>& fold_of, int fold) {
  std::vector<int> split(fold_of.size(), kInTrain);
  for (size_t c = 0; c < fold_of.size(); ++c) {
    split[c] = fold_of[c] < 0 ? kInTest : fold_of[c] == fold ? kInVal : kInTrain;
  }
  return split;
}

namespace {

// The names of a split-file list entry's `key` ("train" | "val"), when it is a list of
// strings; nullopt otherwise.
std::optional<std::vector<std::string>> split_entry_names(const nlohmann::json& entry, const char* key) {
  if (!entry.is_object() || !entry.contains(key) || !entry[key].is_array()) return std::nullopt;
  std::vector<std::string> names;
  for (const auto& n : entry[key]) {
    if (!n.is_string()) return std::nullopt;
    names.push_back(n.get<std::string>());
  }
  return names;
}

// A split-file list read as K folds (nnU-Net's splits_final.json): K >= 2 entries whose
// val lists are disjoint and whose trains each hold exactly the listed cases not in their
// val. Case c's fold is the entry whose val lists it, -1 for a case in no entry. Any other
// list gives folds 0: only its entry --fold is used, as before.
CaseFolds folds_of_split_list(const std::vector<std::string>& case_names, const nlohmann::json& list) {
  if (list.size() < 2) return {};
  std::map<std::string, int> fold_of_name;
  std::set<std::string> listed;
  std::vector<std::vector<std::string>> trains;
  for (size_t k = 0; k < list.size(); ++k) {
    auto train = split_entry_names(list[k], "train");
    auto val = split_entry_names(list[k], "val");
    if (!train || !val) return {};
    for (const auto& name : *val) {
      if (!fold_of_name.emplace(name, static_cast<int>(k)).second) return {};  // in two vals
    }
    listed.insert(train->begin(), train->end());
    listed.insert(val->begin(), val->end());
    trains.push_back(std::move(*train));
  }
  if (fold_of_name.size() != listed.size()) return {};  // a case in some train but in no val
  for (size_t k = 0; k < trains.size(); ++k) {
    std::vector<std::string> want;
    for (const auto& [name, f] : fold_of_name) {
      if (f != static_cast<int>(k)) want.push_back(name);
    }
    std::sort(trains[k].begin(), trains[k].end());
    if (trains[k] != want) return {};
  }
  CaseFolds folds;
  folds.folds = static_cast<int>(list.size());
  for (const auto& name : case_names) {
    auto it = fold_of_name.find(name);
    folds.fold_of.push_back(it == fold_of_name.end() ? data::format::kTestFold : it->second);
  }
  return folds;
}

}  // namespace

FileSplits splits_from_file(const std::vector<std::string>& case_names, const std::string& path, int fold) {
  core::require_file<DataError>(path, "--split-file");
  nlohmann::json j = nlohmann::json::parse(std::ifstream(path), nullptr, false);
  if (j.is_discarded()) STRATA_THROW(DataError, "--split-file {}: not valid JSON", path);
  FileSplits out;
  if (j.is_array()) {
    STRATA_CHECK_AS(DataError, fold >= 0 && fold < static_cast<int>(j.size()),
                    "--split-file {} holds {} fold(s); --fold {} is not one of them", path, j.size(), fold);
    out.folds = folds_of_split_list(case_names, j);
    j = j[static_cast<size_t>(fold)];
  }
  STRATA_CHECK_AS(DataError, j.is_object() && j.contains("train") && j.contains("val") && j["train"].is_array() &&
                                 j["val"].is_array(),
                  "--split-file {}: expected {{\"train\": [case names], \"val\": [case names]}} or a list of them",
                  path);
  std::map<std::string, int> where;
  std::vector<std::string> twice, unknown, nowhere;
  for (const auto& [key, s] : {std::pair{"train", kInTrain}, std::pair{"val", kInVal}}) {
    for (const auto& n : j[key]) {
      const std::string name = n.is_string() ? n.get<std::string>() : n.dump();
      if (std::find(case_names.begin(), case_names.end(), name) == case_names.end()) unknown.push_back(name);
      if (!where.emplace(name, s).second) twice.push_back(name);
    }
  }
  out.split_of.assign(case_names.size(), kInTest);
  for (size_t i = 0; i < case_names.size(); ++i) {
    auto it = where.find(case_names[i]);
    if (it == where.end()) nowhere.push_back(case_names[i]);
    else out.split_of[i] = it->second;
  }
  // A K-fold list holds its cases out of every fold: test, which the log names.
  if (out.folds.folds > 0) std::swap(out.unlisted, nowhere);
  if (!unknown.empty() || !twice.empty() || !nowhere.empty()) {
    std::string why = fmt::format("--split-file {}:", path);
    if (!unknown.empty()) why += fmt::format(" names that are no case of the input: {};", fmt::join(unknown, ", "));
    if (!twice.empty()) why += fmt::format(" cases listed twice: {};", fmt::join(twice, ", "));
    if (!nowhere.empty()) why += fmt::format(" cases in neither train nor val: {};", fmt::join(nowhere, ", "));
    why.back() = '.';
    throw DataError(why);
  }
  return out;
}

std::vector<SplitEntry> split_entries(const std::vector<std::string>& case_names, const CaseFolds& folds) {
  STRATA_CHECK(folds.folds >= 2 && folds.fold_of.size() == case_names.size(),
               "split_entries: {} folds of {} cases for {} names", folds.folds, folds.fold_of.size(), case_names.size());
  std::vector<SplitEntry> entries(static_cast<size_t>(folds.folds));
  for (size_t c = 0; c < case_names.size(); ++c) {
    const int32_t f = folds.fold_of[c];
    if (f < 0) continue;  // test: in no entry
    for (int k = 0; k < folds.folds; ++k) {
      (k == f ? entries[static_cast<size_t>(k)].val : entries[static_cast<size_t>(k)].train).push_back(case_names[c]);
    }
  }
  for (auto& e : entries) {
    std::sort(e.train.begin(), e.train.end());
    std::sort(e.val.begin(), e.val.end());
  }
  return entries;
}

void write_split_file(const std::string& path, const std::vector<SplitEntry>& entries) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& e : entries) list.push_back({{"train", e.train}, {"val", e.val}});
  core::write_file_atomic(path, list.dump(4) + "\n", "the split file");
}

std::string split_method(const PackOptions& o, int file_folds) {
  if (!o.split_file.empty()) {
    const std::string file = fs::absolute(o.split_file).string();
    if (file_folds > 0) {
      return fmt::format("from {} (entry {} of its {} folds; cases in no entry: test)", file, o.fold, file_folds);
    }
    return fmt::format("from {} (entry {})", file, o.fold);
  }
  if (o.folds > 1) {
    return fmt::format("fold {} of {} by case, stratified by necrosis (seed {}){}", o.fold, o.folds, o.seed,
                       o.test_fraction > 0 ? fmt::format("; --test-fraction {} of the cases in test, in no fold",
                                                         o.test_fraction)
                                           : std::string());
  }
  return fmt::format("a seeded fraction {} of the cases in val (seed {})", o.val_fraction, o.seed);
}

namespace {

// The kept slices of a case into out.z (ascending): the selected ones, and with a
// `context` of k > 1 every unselected slice within (k - 1) / 2 of a selected one that
// shows any brain, marked context_only. A neighbour without brain is not stored: its
// normalised values are all 0, which is what a reader substitutes for it.
void keep_neighbours(const std::vector<uint8_t>& selected, const std::vector<int64_t>& brain_pixels, int64_t context,
                     PreparedCase& out) {
  const auto nz = static_cast<int64_t>(selected.size());
  const int64_t r = (context - 1) / 2;
  std::vector<uint8_t> near(selected.size(), 0);
  for (int64_t k = 0; k < nz; ++k) {
    if (!selected[static_cast<size_t>(k)]) continue;
    for (int64_t j = std::max<int64_t>(0, k - r); j <= std::min(nz - 1, k + r); ++j) near[static_cast<size_t>(j)] = 1;
  }
  for (int64_t k = 0; k < nz; ++k) {
    const auto i = static_cast<size_t>(k);
    const bool context_only = !selected[i] && near[i] && brain_pixels[i] > 0;
    if (!selected[i] && !context_only) continue;
    out.z.push_back(static_cast<int32_t>(k));
    out.context_only.push_back(context_only ? 1 : 0);
  }
}

}  // namespace

PreparedCase prepare_case(const CaseFiles& files, const PackOptions& o) {
  auto t0 = std::chrono::steady_clock::now();
  // Cases are the parallelism (one per worker): the resize runs on this thread only.
  core::set_thread_intraop_threads(1);
  CaseVolumes v = read_case(files);
  std::vector<uint8_t> labels = std::move(v.labels);
  NormalisedCase c = normalise_case(std::move(v.modalities), o.size, files.name);
  const CaseGeometry& g = c.geometry;
  const int64_t plane = g.dims[0] * g.dims[1], nz = g.dims[2];

  PreparedCase out;
  out.name = files.name;
  out.geometry = g;
  const uint64_t case_hash = hash_name(o.seed, files.name);
  std::vector<uint8_t> selected(static_cast<size_t>(nz), 0);
  for (int64_t k = 0; k < nz; ++k) {
    bool tumour = false;
    for (int64_t p = k * plane; p < (k + 1) * plane && !tumour; ++p) tumour = labels[static_cast<size_t>(p)] != 0;
    bool has_brain =
        static_cast<double>(c.brain_pixels[static_cast<size_t>(k)]) >= kMinBrainFraction * static_cast<double>(plane);
    bool keep_empty = has_brain && unit_double(mix64(case_hash ^ static_cast<uint64_t>(k))) < o.keep_empty;
    selected[static_cast<size_t>(k)] = tumour || keep_empty;
  }
  keep_neighbours(selected, c.brain_pixels, o.context, out);
  if (!out.z.empty()) {
    torch::Tensor half = slice_images(c, out.z).to(torch::kHalf).contiguous();
    torch::Tensor bytes = slice_labels(labels, g, out.z);
    out.images.resize(static_cast<size_t>(half.numel()));
    std::memcpy(out.images.data(), half.data_ptr(), out.images.size() * sizeof(uint16_t));
    out.labels.assign(bytes.data_ptr<uint8_t>(), bytes.data_ptr<uint8_t>() + bytes.numel());
  }
  out.seconds = pack_seconds_since(t0);
  return out;
}

PackSummary pack_dataset(const PackOptions& o, const std::function<void(int64_t, int64_t)>& progress) {
  auto t0 = std::chrono::steady_clock::now();
  STRATA_CHECK_AS(DataError, o.size >= 16 && o.size <= 1024, "pack: --size must be in [16, 1024], got {}", o.size);
  STRATA_CHECK_AS(DataError, o.val_fraction >= 0 && o.val_fraction < 1, "pack: --val-fraction must be in [0, 1), got {}",
                  o.val_fraction);
  STRATA_CHECK_AS(DataError, o.keep_empty >= 0 && o.keep_empty <= 1, "pack: --keep-empty must be in [0, 1], got {}",
                  o.keep_empty);
  STRATA_CHECK_AS(DataError, o.context >= 1 && o.context <= 15 && o.context % 2 == 1,
                  "pack: --context must be odd, in [1, 15], got {}", o.context);
  PackOutput output(o.out_path, o.force);
  const PackCases input = pack_cases(o);
  const std::vector<CaseFiles>& cases = input.files;
  SliceWriter writer(output.tmp(), o.size, o.checksums);

  PackSummary summary;
  summary.cases = static_cast<int64_t>(cases.size());
  summary.workers = resolve_workers(o.workers, summary.cases);
  // Per case, as written: its split slices (all but neighbours kept for --context) and
  // their class pixels. Splits come after the last case: folds are stratified by them.
  std::vector<std::vector<int64_t>> case_slices(cases.size());
  std::vector<std::array<int64_t, 4>> case_class_voxels(cases.size());
  std::vector<int32_t> slice_case, slice_z;
  std::vector<CaseGeometry> geometry(cases.size());

  run_ordered<PreparedCase>(
      summary.cases, summary.workers, 2 * summary.workers,
      [&](int64_t i) { return prepare_case(cases[static_cast<size_t>(i)], o); },
      [&](int64_t i, PreparedCase&& c) {
        const auto ci = static_cast<size_t>(i);
        const int64_t first = writer.slices();
        writer.append(c);
        geometry[ci] = c.geometry;
        const size_t plane = c.z.empty() ? 0 : c.labels.size() / c.z.size();
        for (size_t k = 0; k < c.z.size(); ++k) {
          slice_case.push_back(static_cast<int32_t>(i));
          slice_z.push_back(c.z[k]);
          if (c.context_only[k]) continue;  // a neighbour only: stored, in no split
          case_slices[ci].push_back(first + static_cast<int64_t>(k));
          for (size_t p = k * plane; p < (k + 1) * plane; ++p) ++case_class_voxels[ci][c.labels[p]];
        }
        summary.context_slices += static_cast<int64_t>(c.z.size() - case_slices[ci].size());
        summary.case_seconds += c.seconds;
        if (progress) progress(i + 1, summary.cases);
      });
  const CaseSplits case_splits = split_cases(o, input, case_class_voxels);
  summary.splits = empty_splits(case_splits);
  std::vector<std::vector<int64_t>> split_slices(summary.splits.size());
  for (size_t c = 0; c < cases.size(); ++c) {  // in case order, so each split's slices ascend
    const auto s = static_cast<size_t>(case_splits.split_of[c]);
    SplitSummary& split = summary.splits[s];
    split_slices[s].insert(split_slices[s].end(), case_slices[c].begin(), case_slices[c].end());
    for (size_t k = 0; k < case_class_voxels[c].size(); ++k) split.class_voxels[k] += case_class_voxels[c][k];
    split.cases += case_slices[c].empty() ? 0 : 1;
    split.slices += static_cast<int64_t>(case_slices[c].size());
  }
  summary.folds = fold_summaries(case_splits, case_class_voxels);
  summary.unlisted = case_splits.unlisted;
  summary.slices = writer.slices();
  writer.finish(slice_case, slice_z, input.names, geometry, case_splits, case_class_voxels, summary.splits,
                split_slices, o);
  summary.bytes = output.commit();
  summary.seconds = pack_seconds_since(t0);
  return summary;
}

}  // namespace strata::dataprep
