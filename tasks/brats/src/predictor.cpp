// Case folders to segmentations in the original geometry (see predictor.h).
#include "strata/brats/predictor.h"

#include "strata/brats/predictions.h"

#include "strata/core/error.h"
#include "strata/core/intraop.h"
#include "strata/core/log.h"
#include "strata/core/progress.h"
#include "strata/core/timer.h"
#include "strata/dataprep/brats_slices.h"
#include "strata/dataprep/preprocess.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <future>
#include <sstream>

namespace strata::brats {
namespace {

namespace fs = std::filesystem;

// A case read and preprocessed (on the reader thread), ready for the network.
struct ReadyCase {
  dataprep::NormalisedCase volume;
  torch::Tensor images;          // [nz, 4 * context, size, size] float32; 3D: [4, D, H, W] of `box`
  dataprep::BrainBox box;        // 3D: the brain's box
  std::vector<uint8_t> truth;    // BraTS labels of the seg, when scoring and present
  double read_s = 0, preprocess_s = 0;
};

ReadyCase prepare(const dataprep::CaseFiles& files, int64_t size, bool with_truth, const PredictSetup& setup) {
  ReadyCase r;
  core::set_thread_intraop_threads(1);  // the network uses the cores; this thread reads beside it
  core::Stopwatch clock;
  dataprep::CaseFiles f = files;
  if (!with_truth) f.seg.clear();
  dataprep::CaseVolumes v = dataprep::read_case(f);
  r.read_s = clock.seconds();
  clock.restart();
  for (uint8_t c : v.labels) r.truth.push_back(static_cast<uint8_t>(dataprep::brats_slices::kSourceLabels[c]));
  r.volume = dataprep::normalise_case(std::move(v.modalities), setup.volumes ? 0 : size, files.name);
  if (setup.volumes) {
    r.box = dataprep::brain_box(r.volume);
    if (setup.check) setup.check(files.name, r.volume.geometry, &r.box);
    r.images = dataprep::crop_images(r.volume, r.box);
  } else {
    if (setup.check) setup.check(files.name, r.volume.geometry, nullptr);
    std::vector<int32_t> all(static_cast<size_t>(r.volume.geometry.dims[2]));
    for (size_t k = 0; k < all.size(); ++k) all[k] = static_cast<int32_t>(k);
    r.images = dataprep::stack_context(dataprep::slice_images(r.volume, all), setup.context);
  }
  r.preprocess_s = clock.seconds();
  return r;
}

// One rank's part of a run as text, for the gather: its seconds and stage times, then a
// line per case written (W), skipped (S) and scored (C).
std::string encode_rank(const PredictResult& mine) {
  const PredictTimes& t = mine.times;
  std::string text = fmt::format("{} {} {} {} {} {}\n", mine.seconds, t.read, t.preprocess, t.infer, t.write, t.score);
  for (const auto& n : mine.written) text += "W " + n + "\n";
  for (const auto& n : mine.skipped) text += "S " + n + "\n";
  for (const auto& s : mine.scores) text += "C " + encode_case(s) + "\n";
  return text;
}

// Adds one rank's text to `r`: the slowest rank's seconds, the sum of the stage times.
void merge_rank(const std::string& text, PredictResult& r) {
  std::istringstream in(text);
  double secs = 0;
  PredictTimes x;
  in >> secs >> x.read >> x.preprocess >> x.infer >> x.write >> x.score;
  r.seconds = std::max(r.seconds, secs);
  r.times.read += x.read, r.times.preprocess += x.preprocess, r.times.infer += x.infer;
  r.times.write += x.write, r.times.score += x.score;
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    if (line.rfind("W ", 0) == 0) r.written.push_back(line.substr(2));
    if (line.rfind("S ", 0) == 0) r.skipped.push_back(line.substr(2));
    if (line.rfind("C ", 0) == 0) r.scores.push_back(decode_case(line.substr(2)));
  }
}

}  // namespace

Predictor::Predictor(PredictSetup setup, torch::Device device, const comm::World* world)
    : setup_(std::move(setup)), device_(device), world_(world) {
  rank_ = world_ ? world_->rank() : 0;
  size_ = world_ ? world_->size() : 1;
  STRATA_CHECK_AS(ConfigError, setup_.volumes || setup_.size >= 16,
                  "predict: the packed slice size must be known (>= 16), got {}", setup_.size);
  STRATA_CHECK_AS(ConfigError, setup_.batch >= 1, "predict: batch must be >= 1, got {}", setup_.batch);
  STRATA_CHECK_AS(ConfigError, setup_.context >= 1 && setup_.context % 2 == 1,
                  "predict: the context must be odd and >= 1, got {}", setup_.context);
  STRATA_CHECK_AS(ConfigError, setup_.inferer != nullptr, "predict: no inferer (eval::make_inferer)");
  STRATA_CHECK_AS(ConfigError, !setup_.out.empty(), "predict: --out is empty");
  std::error_code ec;
  STRATA_CHECK_AS(IoError, !fs::exists(setup_.out, ec) || fs::is_directory(setup_.out, ec),
                  "predict --out '{}' is a file; expected a folder", setup_.out);
  cases_ = dataprep::find_cases(setup_.input, /*require_seg=*/false);
  if (!setup_.only.empty()) {
    std::vector<dataprep::CaseFiles> kept;
    for (const auto& name : setup_.only) {
      auto it = std::find_if(cases_.begin(), cases_.end(), [&](const auto& c) { return c.name == name; });
      STRATA_CHECK_AS(DataError, it != cases_.end(), "case {} is not in {}", name, setup_.input);
      kept.push_back(*it);
    }
    std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    cases_ = std::move(kept);
  }
}

PredictResult Predictor::run(const eval::SegmentationModels& models) {
  torch::NoGradGuard no_grad;
  core::Stopwatch wall;
  std::error_code ec;
  fs::create_directories(setup_.out, ec);
  STRATA_CHECK_AS(IoError, fs::is_directory(setup_.out), "cannot create the output folder '{}': {}", setup_.out,
                  ec.message());
  PredictResult done;  // this rank's
  const std::vector<size_t> mine = share(done);
  auto start = [&](size_t k) {
    const auto& f = cases_[mine[k]];
    return std::async(std::launch::async, prepare, f, setup_.size, setup_.score && !f.seg.empty(), std::cref(setup_));
  };
  std::future<ReadyCase> next;
  if (!mine.empty()) next = start(0);
  for (size_t k = 0; k < mine.size(); ++k) {
    const dataprep::CaseFiles& files = cases_[mine[k]];
    ReadyCase c = next.get();  // rethrows the reader's DataError, naming the file
    if (k + 1 < mine.size()) next = start(k + 1);  // the next case is read while this one runs
    done.times.read += c.read_s;
    done.times.preprocess += c.preprocess_s;

    core::Stopwatch clock;
    const std::string title = fmt::format("predict {} ({}/{} on this rank)", files.name, k + 1, mine.size());
    const Inferred inferred = infer(models, c.images, c.volume, c.box, title);
    done.times.infer += clock.seconds();
    clock.restart();
    const std::vector<uint8_t> labels = write(files, c.volume, inferred);
    done.times.write += clock.seconds();
    done.written.push_back(files.name);
    if (!c.truth.empty()) {
      clock.restart();
      done.scores.push_back(score_case(files.name, labels, c.truth, c.volume.geometry.dims, c.volume.geometry.spacing));
      done.times.score += clock.seconds();
    }
  }
  done.seconds = wall.seconds();
  return gather(done);
}

// This rank's cases, round robin over the sorted names; outputs that exist are skipped.
std::vector<size_t> Predictor::share(PredictResult& mine) const {
  std::vector<size_t> pending;
  for (size_t i = static_cast<size_t>(rank_); i < cases_.size(); i += static_cast<size_t>(size_)) {
    const fs::path out = fs::path(setup_.out) / (cases_[i].name + ".nii.gz");
    const bool done = fs::exists(out) && (!setup_.save_probabilities || fs::exists(probabilities_path(setup_.out,
                                                                                                      cases_[i].name)));
    if (done && !setup_.force) {
      mine.skipped.push_back(cases_[i].name);
    } else {
      pending.push_back(i);
    }
  }
  return pending;
}

Predictor::Inferred Predictor::infer(const eval::SegmentationModels& models, const torch::Tensor& images,
                                     const dataprep::NormalisedCase& volume, const dataprep::BrainBox& box,
                                     const std::string& title) const {
  core::ProgressOptions po;
  po.enabled = setup_.progress && rank_ == 0;
  if (setup_.volumes) {  // the case whole, one inferer call (its windows in sw_batch passes)
    core::ProgressBar bar(title, 1, po);
    torch::Tensor p;
    {
      nn::AutocastScope autocast(setup_.amp, device_);
      p = eval::ensemble_probabilities(*setup_.inferer, models, images.unsqueeze(0).to(device_));
    }
    bar.finish();
    if (setup_.save_probabilities) {
      torch::Tensor full = dataprep::uncrop_probabilities(p[0], volume.geometry.dims, box, volume.brain);
      return {classes_of(full), full};
    }
    return {dataprep::uncrop_classes(p[0].argmax(0).to(torch::kByte), volume.geometry.dims, box, volume.brain), {}};
  }
  const int64_t nz = images.size(0);
  core::ProgressBar bar(title, nz, po);
  std::vector<torch::Tensor> probs;
  for (int64_t s0 = 0; s0 < nz; s0 += setup_.batch) {
    const int64_t n = std::min(setup_.batch, nz - s0);
    torch::Tensor x = images.narrow(0, s0, n).to(device_);
    torch::Tensor p;
    {
      nn::AutocastScope autocast(setup_.amp, device_);
      p = eval::ensemble_probabilities(*setup_.inferer, models, x);
    }
    probs.push_back(p.to(torch::kCPU, torch::kFloat));
    bar.update(s0 + n);
  }
  bar.finish();
  if (setup_.save_probabilities) {
    torch::Tensor full = dataprep::probabilities_in_source(torch::cat(probs), volume.geometry, volume.brain);
    return {classes_of(full), full};
  }
  return {dataprep::labels_from_probabilities(torch::cat(probs), volume.geometry, volume.brain), {}};
}

std::vector<uint8_t> Predictor::write(const dataprep::CaseFiles& files, const dataprep::NormalisedCase& volume,
                                      const Inferred& inferred) const {
  const std::string& reference = files.modalities[1];  // the T1ce's header
  if (setup_.save_probabilities) {  // first, so that a case with labels has its probabilities
    write_probabilities_file(probabilities_path(setup_.out, files.name), reference, volume.geometry.dims,
                             inferred.probabilities);
  }
  std::vector<uint8_t> labels = source_labels(inferred.classes);
  if (setup_.postprocess) apply_postprocessing(labels, volume.geometry.dims, *setup_.postprocess);
  write_labels_file((fs::path(setup_.out) / (files.name + ".nii.gz")).string(), reference, volume.geometry.dims, labels);
  return labels;
}

// Every rank's lists, times and scores, gathered (one collective).
PredictResult Predictor::gather(const PredictResult& mine) const {
  const std::string text = encode_rank(mine);
  std::vector<std::string> all = world_ ? world_->all_gather(text) : std::vector<std::string>{text};
  PredictResult r;
  r.cases = static_cast<int64_t>(cases_.size());
  r.ranks = size_;
  for (const auto& one : all) merge_rank(one, r);
  std::sort(r.written.begin(), r.written.end());
  std::sort(r.skipped.begin(), r.skipped.end());
  std::sort(r.scores.begin(), r.scores.end(), [](const CaseScore& a, const CaseScore& b) { return a.name < b.name; });
  return r;
}

}  // namespace strata::brats
