// `brats_recipe pack`: BraTS NIfTI case folders to one HDF5 slice file (data/FORMAT.md).
//
// Per case (decoded on worker threads, written in case order by the calling thread,
// so the output does not depend on the thread count):
//   1. read t1, t1ce, t2, flair and seg; all five must have the same dimensions;
//   2. remap labels {0, 1, 2, 4} -> {0, 1, 2, 3}; any other value is a DataError
//      naming the case and the value;
//   3. brain = voxels where any modality is non-zero; normalise each modality to
//      zero mean and unit variance over the brain voxels; voxels outside stay 0;
//   4. select axial slices (constant third voxel index): every slice with tumour,
//      plus a seeded fraction `keep_empty` of tumour-free slices that show brain (at
//      least kMinBrainFraction of the slice); never a slice without brain;
//      With `context` k > 1, also keep the (k - 1) / 2 neighbours on each side of every
//      selected slice that show any brain, as slices in no split: a k-slice input
//      (data.context) reads them, and a neighbour without brain reads as zeros, which
//      is what it holds (FORMAT.md);
//   5. crop every kept slice to the case's in-plane brain bounding box (the same box
//      for all its slices), pad it with zeros to a centred square, and resize to
//      size x size: images bilinear with antialiasing, labels nearest (exact);
//   6. store images as float16 and labels as uint8.
// Cases are split into train and val by case, from a seeded hash of each case name,
// so the split depends only on the names, the seed and val_fraction. With `folds` K,
// every case gets one of K folds (stratified by necrosis, which needs each case's labels,
// so folds are assigned once every case is prepared) and the file records them all
// (FORMAT.md, "Folds"); fold `fold` is val, the others train, and `test_fraction` holds
// cases out of every fold as a split "test".
//
// The output is written to a temporary file beside it and renamed when complete. An
// existing output is refused unless `force`. The same inputs and options give
// byte-identical files.
#pragma once

#include "strata/dataprep/nifti.h"
#include "strata/dataprep/preprocess.h"

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace strata::dataprep {

// A tumour-free slice counts as showing brain when at least this fraction of its
// pixels are brain.
inline constexpr double kMinBrainFraction = 0.01;

struct PackOptions {
  std::string input_dir;       // folder of case folders
  std::string out_path;        // the .h5 file to write
  int64_t size = 128;          // slices are size x size
  double val_fraction = 0.2;   // fraction of cases in "val"
  uint64_t seed = 0;           // split and slice-selection seed
  double keep_empty = 0.1;     // fraction of tumour-free brain slices kept
  int workers = 0;             // decoding threads; 0: one per hardware thread
  bool force = false;          // overwrite an existing output
  bool checksums = true;       // Fletcher-32 per chunk
  int folds = 0;               // > 1: K-fold cross-validation by case, stratified by necrosis; `fold` is the val fold
  int fold = 0;                // the fold in val (with `folds`), or the entry of a split file's list
  double test_fraction = 0;    // with `folds`: round(test_fraction * C) cases (at least one) in "test", in no fold
  std::string split_file;      // JSON of train and val case names (nnU-Net's splits_final.json shape)
  int64_t context = 1;         // odd: keep the neighbours a `context`-slice input needs (step 4)
};

// The files of one case folder.
struct CaseFiles {
  std::string name;                     // folder name, e.g. BraTS2021_00000
  std::array<std::string, 4> modalities;  // t1, t1ce, t2, flair paths
  std::string seg;                      // seg path
};

// Case folders under `input_dir`, sorted by name: every non-hidden subfolder is a
// case and must hold <name>_{t1,t1ce,t2,flair,seg}.nii.gz (or .nii). An empty input, or
// a case without one of its files, is a DataError naming the folder or file. Without
// `require_seg` the seg is optional (CaseFiles::seg is then "" where it is missing), and
// `input_dir` may itself be one case folder (holding <its name>_t1ce.nii.gz).
std::vector<CaseFiles> find_cases(const std::string& input_dir, bool require_seg = true);

// Remaps a BraTS seg volume to classes 0..3 (0->0, 1->1, 2->2, 4->3). Any other value
// (or a non-integer) is a DataError naming `case_name`, `seg_path` and the value.
std::vector<uint8_t> remap_labels(const Volume& seg, const std::string& case_name, const std::string& seg_path);

// The split of a case, as an index into brats_slices::kSplitNames.
inline constexpr int kInTrain = 0, kInVal = 1, kInTest = 2;

// Split of each case (kInTrain or kInVal), from a seeded hash of its name: the
// round(val_fraction * C) cases with the smallest hashes go to val, at least one and
// at most C - 1 when 0 < val_fraction and C >= 2.
std::vector<int> assign_splits(const std::vector<std::string>& case_names, double val_fraction, uint64_t seed);

// The folds of a cross-validation, as the packed file records them (/case_folds, `folds`).
struct CaseFolds {
  int folds = 0;                 // K; 0: no folds (a seeded fraction, or a split file of one train/val pair)
  std::vector<int32_t> fold_of;  // per case: its fold 0..K-1, or -1 (data::format::kTestFold) when held out as test
};

// Cases --test-fraction holds out of C: round(test_fraction * C), at least one when > 0.
int64_t held_out_cases(int64_t cases, double test_fraction);

// K-fold cross-validation by case, stratified by necrosis: the cases with necrosis
// (`necrosis[c]` != 0) and those without, each in seeded hash order; from each, its share
// (largest remainder) of the held_out_cases go to test (-1), and the rest are dealt
// round-robin into folds 0..K-1, the second stratum continuing where the first stopped.
// So fold sizes differ by at most one, in each stratum and overall, and every fold has
// cases of both kinds whenever each kind has at least K cases left for the folds. The
// same names, flags and seed give the same folds. A DataError when K is outside
// [2, cases left for the folds] or test_fraction outside [0, 1).
std::vector<int32_t> stratified_folds(const std::vector<std::string>& case_names, const std::vector<uint8_t>& necrosis,
                                      int folds, double test_fraction, uint64_t seed);

// The split of each case when fold `fold` is validated: kInVal for its cases, kInTest for
// -1, kInTrain for the other folds.
std::vector<int> splits_of_folds(const std::vector<int32_t>& fold_of, int fold);

// Splits from a JSON file: {"train": [names], "val": [names]}, or a list of such objects
// (nnU-Net's splits_final.json, one per fold) of which entry `fold` is used. In the
// first case, and in a list that is not a K-fold list, every case must be in exactly one
// of entry `fold`'s train and val. A list of K >= 2 entries whose val lists partition
// its cases, each entry's train holding the rest (what nnU-Net writes), gives every
// fold: `folds` records them, and a case of the input in no entry goes to test (fold -1,
// listed in `unlisted`). A name that is no case, a case in both lists (or, outside a
// K-fold list, in neither) is a DataError naming the file and the cases.
struct FileSplits {
  std::vector<int> split_of;          // per case: kInTrain, kInVal or kInTest
  CaseFolds folds;                    // every fold of a K-fold list; folds 0 otherwise
  std::vector<std::string> unlisted;  // cases of the input in no entry of a K-fold list (in test)
};
FileSplits splits_from_file(const std::vector<std::string>& case_names, const std::string& path, int fold);

// One entry of a split file: the train and val case names of one fold.
struct SplitEntry {
  std::vector<std::string> train, val;
};
// The K entries of `folds` (K >= 2): entry k's val holds fold k's cases, its train the
// other folds' (test cases are in neither), each sorted by name.
std::vector<SplitEntry> split_entries(const std::vector<std::string>& case_names, const CaseFolds& folds);
// Writes `entries` as nnU-Net's splits_final.json ([{"train": [...], "val": [...]}, ...])
// to `path` atomically (temporary file, then rename); an IoError naming the file.
void write_split_file(const std::string& path, const std::vector<SplitEntry>& entries);

// How `options` splits the cases, for the packed file's `split_method` attribute;
// `file_folds`: the K of a split file's K-fold list (0: none).
std::string split_method(const PackOptions& options, int file_folds = 0);

// The volumes of one case: the four modalities (t1, t1ce, t2, flair) and, when the
// case has a seg, its classes 0..3. All of one size, else a DataError naming the files.
struct CaseVolumes {
  std::array<Volume, 4> modalities;
  std::vector<uint8_t> labels;  // empty without a seg
};
CaseVolumes read_case(const CaseFiles& files);

// One case after steps 1-6: its kept slices, ready to write.
struct PreparedCase {
  std::string name;
  CaseGeometry geometry;           // what maps its slices back to the source volumes
  std::vector<int32_t> z;          // axial index of each kept slice, ascending
  std::vector<uint8_t> context_only;  // per kept slice: 1 if kept only as a neighbour (in no split)
  std::vector<uint16_t> images;    // float16 bits [k, 4, size, size]
  std::vector<uint8_t> labels;     // [k, size, size], values 0..3
  double seconds = 0;              // time to decode and prepare
};
PreparedCase prepare_case(const CaseFiles& files, const PackOptions& options);

struct SplitSummary {
  std::string name;                      // train | val | test
  int64_t cases = 0;
  int64_t slices = 0;
  std::array<int64_t, 4> class_voxels{};  // pixels per stored class
};

// One fold of a packed cross-validation (or, as fold -1, its test cases).
struct FoldSummary {
  int fold = 0;                // 0..K-1; -1: held out as test
  int64_t cases = 0;
  int64_t necrosis_cases = 0;  // cases with any pixel or voxel of necrotic core (class 1)
};

struct PackSummary {
  int64_t cases = 0;
  int64_t slices = 0;                    // every stored slice, context_slices included
  int64_t context_slices = 0;            // stored only as neighbours, in no split (PackOptions::context)
  std::vector<SplitSummary> splits;      // train, val, and test when cases are held out
  std::vector<FoldSummary> folds;        // each fold, then test (-1) when held out; empty without folds
  std::vector<std::string> unlisted;     // cases in no entry of the split file's K-fold list (in test)
  int64_t bytes = 0;                     // output file size
  double seconds = 0;                    // wall time
  double case_seconds = 0;               // summed per-case decode + prepare time (over workers)
  int workers = 0;
};

// Packs `options.input_dir` into `options.out_path`. `progress(done, total)` is
// called from the calling thread after each case is written.
PackSummary pack_dataset(const PackOptions& options, const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace strata::dataprep
