// Predictor: BraTS case folders in, one segmentation per case out, in the input's own
// geometry and header.
//
// Per case (the ranks share the cases, by sorted name, round robin):
//   read the four modalities -> the preprocessing `pack` uses (data/preprocess.h) on
//   every axial slice (with a context, each stacked with its neighbours, as SliceStore
//   reads them) -> the network through the Inferer (eval/inferer.h: TTA, softmax
//   averaged over views), one call per batch of slices -> the class
//   probabilities mapped back (resized, un-padded, un-cropped; 0 outside the brain) ->
//   BraTS labels 0/1/2/4 -> <out>/<case>.nii.gz, uint8, with the T1ce's dims, pixdim,
//   qform and sform; written under a temporary name and renamed.
// A 3D model (`volumes`) takes each case whole instead: the preprocessing of packed
// volumes (brain_box, crop_images: the brain's box over three axes, no resizing) -> the
// network through a SlidingWindowInferer (eval/sliding_window.h: Gaussian-weighted
// windows, mirroring) in one call per case -> argmax -> un-cropped into the source
// volume (0 outside the box and the brain) -> the same labels and file.
// Reading and preprocessing the next case run on a thread of their own while this one
// is inferred. A case whose output exists is skipped unless `force`. With `score`, a
// case folder that has a seg is scored (scorer.h) in the same run.
//
// Contract: every rank constructs it with the same setup and calls run() (collective:
// one gather of the per-case results at the end, through `world` when it is given).
// Layering: tasks/brats sits above framework/eval (TTA, the model's signature) and the
// top-level data/ (NIfTI, the packer's preprocessing), which framework/ never includes.
#pragma once

#include "strata/brats/postprocess.h"
#include "strata/brats/scorer.h"
#include "strata/comm/world.h"
#include "strata/dataprep/packer.h"
#include "strata/dataprep/preprocess.h"
#include "strata/eval/inferer.h"
#include "strata/nn/precision.h"

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace strata::brats {

struct PredictSetup {
  std::string input;        // a folder of BraTS case folders, or one case folder
  std::string out;          // folder of the <case>.nii.gz predictions
  int64_t size = 0;         // the packed slice size the model was trained on (2D only)
  int64_t context = 1;      // slices per sample the model was trained on (data.context; 2.5D when > 1)
  bool volumes = false;     // a 3D model: whole cases through the inferer (sliding windows); size and context unused
  std::shared_ptr<const eval::Inferer> inferer;  // required: eval::make_inferer of the eval section
  int64_t batch = 16;       // slices per forward pass
  nn::AmpMode amp = nn::AmpMode::kOff;
  bool force = false;       // redo cases whose output exists
  bool score = false;       // score the cases that have a seg
  // Also write <out>/probabilities/<case>.nii.gz: float32, one volume per class (K along
  // the 4th dimension) in the case's geometry and header, background 1 outside the brain;
  // what `ensemble` averages.
  bool save_probabilities = false;
  // Applied to every case's labels before they are written and scored (postprocess.h;
  // the probabilities stay as inferred); null: none.
  std::shared_ptr<const Postprocessing> postprocess;
  bool progress = true;     // a bar per case on rank 0
  std::vector<std::string> only;  // non-empty: predict these cases of `input` only (a DataError if one is absent)
  // Called with each case's geometry after preprocessing (on the reader thread); may
  // throw, e.g. when the source no longer matches what a packed file recorded.
  // 3D: `box` is the brain box the case is cropped to (null in 2D).
  std::function<void(const std::string& name, const dataprep::CaseGeometry& geometry, const dataprep::BrainBox* box)>
      check;
};

// Seconds per stage, summed over this rank's cases (then over ranks).
struct PredictTimes {
  double read = 0, preprocess = 0, infer = 0, write = 0, score = 0;
};

struct PredictResult {
  int64_t cases = 0;                 // cases found
  std::vector<std::string> written;  // cases predicted now (all ranks)
  std::vector<std::string> skipped;  // outputs that existed (all ranks)
  std::vector<CaseScore> scores;     // with `score`: the cases that had a seg, by name
  PredictTimes times;                // over all ranks
  double seconds = 0;                // wall time, slowest rank
  int ranks = 1;
};

class Predictor {
 public:
  // Finds the cases (a DataError naming the folder when there are none, or a case
  // misses a modality) and checks the options; no collectives.
  Predictor(PredictSetup setup, torch::Device device, const comm::World* world);
  PredictResult run(const eval::SegmentationModel& model) { return run(eval::SegmentationModels{model}); }
  // An ensemble: the mean of the models' probabilities, each after the inferer's views
  // (eval::ensemble_probabilities). Collective.
  PredictResult run(const eval::SegmentationModels& models);
  int64_t num_cases() const { return static_cast<int64_t>(cases_.size()); }

 private:
  // run(), along its seams: this rank's share of the cases, one case's inference (the
  // network's classes per voxel) and its file (the BraTS labels written), the gather.
  std::vector<size_t> share(PredictResult& mine) const;  // fills mine.skipped
  struct Inferred {
    std::vector<uint8_t> classes;  // the source's voxel order
    torch::Tensor probabilities;   // with save_probabilities: float32 [K, nz, ny, nx]
  };
  Inferred infer(const eval::SegmentationModels& models, const torch::Tensor& images,
                 const dataprep::NormalisedCase& volume, const dataprep::BrainBox& box, const std::string& title) const;
  std::vector<uint8_t> write(const dataprep::CaseFiles& files, const dataprep::NormalisedCase& volume,
                             const Inferred& inferred) const;
  PredictResult gather(const PredictResult& mine) const;

  PredictSetup setup_;
  torch::Device device_;
  const comm::World* world_;
  int rank_ = 0, size_ = 1;
  std::vector<dataprep::CaseFiles> cases_;  // sorted by name; seg "" where the folder has none
};

}  // namespace strata::brats
