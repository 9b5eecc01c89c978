// augment3d_bench: the time Augment3d takes per 3D sample, on CPU (where the
// Prefetcher's readers run it, each with one intra-op thread) or on a CUDA device. One
// JSON line per (shape, threads): the median over --reps batches of apply() (voxel
// moves, intensity and noise as configured), in ms per batch and per sample.
// Flips and rot90 are drawn with probability 1 by default, so every batch moves every
// voxel (the worst case; a real config's 0.5 skips the gather for some batches).
//
//   build/bin/augment3d_bench [--shape 2,4,64,64,64 --shape 2,4,128,128,128] [--threads 1,2]
//                             [--reps 7] [--device cpu|cuda] [--prob 1.0] [--intensity 1.0]
#include "strata/core/intraop.h"
#include "strata/core/timer.h"
#include "strata/data/augment3d.h"

#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/cuda.h>

#include <algorithm>
#include <thread>
#include <vector>

namespace {

using namespace strata;

struct Options {
  std::vector<std::string> shapes{"2,4,64,64,64", "2,4,128,128,128"};  // B,C,D,H,W
  std::vector<int> threads;  // intra-op threads; default 1 and every core
  int reps = 7;
  std::string device = "cpu";
  double prob = 1.0;       // flip_prob and rot90_prob
  double intensity = 1.0;  // intensity_prob
};

std::vector<int64_t> parse_shape(const std::string& s) {
  std::vector<int64_t> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    const size_t comma = std::min(s.find(',', pos), s.size());
    out.push_back(std::stoll(s.substr(pos, comma - pos)));
    pos = comma + 1;
  }
  if (out.size() != 5) throw std::invalid_argument("--shape wants B,C,D,H,W, got " + s);
  return out;
}

// Median ms of `reps` applies (after one warm-up), each on a fresh copy of the batch.
double median_ms(const data::Augment3d& aug, const at::Tensor& images, const at::Tensor& labels, int reps) {
  std::vector<double> ms;
  for (int r = -1; r < reps; ++r) {
    at::Tensor im = images.clone(), lab = labels.clone();
    if (im.is_cuda()) torch::cuda::synchronize();
    core::Stopwatch clock;
    aug.apply(im, lab, r + 1);
    if (im.is_cuda()) torch::cuda::synchronize();
    if (r >= 0) ms.push_back(clock.millis());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

void run(const Options& o, const std::vector<int64_t>& shape, int threads) {
  core::set_thread_intraop_threads(threads);
  data::AugmentConfig c;
  c.flip_prob = c.rot90_prob = o.prob;
  c.rotate_prob = c.scale_prob = 0;
  c.intensity_prob = o.intensity;
  data::Augment3d aug(c, 1, 0);
  const c10::Device device(o.device);
  at::Tensor images = at::randn(shape, at::TensorOptions().device(device));
  at::Tensor labels = at::randint(0, 4, {shape[0], shape[2], shape[3], shape[4]},
                                  at::TensorOptions().dtype(at::kLong).device(device));
  const double ms = median_ms(aug, images, labels, o.reps);
  fmt::print("{{\"bench\": \"augment3d\", \"shape\": [{}], \"device\": \"{}\", \"threads\": {}, \"flip_rot90_prob\": {}, "
             "\"intensity_prob\": {}, \"reps\": {}, \"ms_per_batch\": {:.2f}, \"ms_per_sample\": {:.2f}}}\n",
             fmt::join(shape, ", "), device.str(), threads, o.prob, o.intensity, o.reps, ms,
             ms / static_cast<double>(shape[0]));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Augment3d time per sample (JSON lines)", "augment3d_bench"};
  app.add_option("--shape", o.shapes, "B,C,D,H,W (repeatable)");
  app.add_option("--threads", o.threads, "intra-op threads, comma separated (default: 1 and every core)")
      ->delimiter(',');
  app.add_option("--reps", o.reps, "timed batches per shape")->check(CLI::PositiveNumber);
  app.add_option("--device", o.device, "cpu | cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--prob", o.prob, "flip_prob and rot90_prob")->check(CLI::Range(0.0, 1.0));
  app.add_option("--intensity", o.intensity, "intensity_prob")->check(CLI::Range(0.0, 1.0));
  CLI11_PARSE(app, argc, argv);
  try {
    if (o.device == "cuda" && !torch::cuda::is_available()) throw std::runtime_error("--device cuda: no CUDA device");
    if (o.threads.empty()) o.threads = {1, static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))};
    for (const auto& s : o.shapes) {
      for (int t : o.threads) run(o, parse_shape(s), t);
    }
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "augment3d_bench: {}\n", e.what());
    return 1;
  }
}
