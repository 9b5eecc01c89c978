// loader_bench: the input pipeline end to end (ShardSampler -> Prefetcher ->
// batches on the device, augmented or not), as slices/s delivered to a consumer and
// the fraction of the consumer's time spent waiting for data while it simulates a
// training step of T ms. One JSON line per run; without --workers / --augment it sweeps
// 1..N workers and augmentation off and on. Without --file it synthesises and packs its
// own data at 128^2 and 240^2.
//
// The simulated step is a sleep (`--step-kind sleep`, a GPU step: the host is idle) or
// matrix products on every core for T ms (`compute`, a CPU step competing with the
// readers for the cores). On CUDA each batch is waited for on the current stream, so
// slices/s counts batches that have really arrived on the device.
//
//   build/bin/loader_bench [--file F.h5] [--workers N] [--augment on|off] [--step-ms T[,T2..]]
//                          [--step-kind sleep|compute] [--batch 16] [--depth 4] [--seconds 3]
//                          [--device auto|cpu|cuda] [--image-dtype float32|float16]
#include "bench_data.h"
#include "strata/core/build_info.h"
#include "strata/core/timer.h"
#include "strata/data/augment.h"
#include "strata/data/prefetcher.h"
#include "strata/data/slice_store.h"

#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <torch/cuda.h>
#if STRATA_WITH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

#include <memory>
#include <thread>

namespace {

using namespace strata;

struct Options {
  std::string file;                  // packed file; empty: synthesise at 128 and 240
  int workers = 0;                   // 0: sweep 1..hardware threads
  std::string augment = "both";      // on | off | both
  std::vector<double> step_ms{0.0};  // simulated step times
  std::string step_kind = "sleep";   // sleep | compute
  int64_t batch = 16;                // slices per batch
  int depth = 4;                     // queue depth
  double seconds = 3.0;              // per run
  std::string device = "auto";       // auto | cpu | cuda
  std::string image_dtype = "float32";
  int64_t cases = 8;                 // synthetic cases without --file
};

// Busy work on every intra-op thread for about `ms` milliseconds.
void compute_for(double ms) {
  static at::Tensor a = at::randn({384, 384}), b = at::randn({384, 384});
  core::Stopwatch clock;
  while (clock.millis() < ms) a = at::mm(a, b).tanh_();
}

void run_once(const std::shared_ptr<const data::SliceStore>& store, const Options& o, c10::Device device, int workers,
              bool augment, double step_ms) {
  data::AugmentConfig ac;
  ac.enabled = augment;
  data::PrefetchOptions po;
  po.workers = workers;
  po.depth = o.depth;
  po.device = device;
  po.image_dtype = o.image_dtype == "float16" ? at::kHalf : at::kFloat;
  po.augment = augment ? std::make_shared<const data::Augment>(ac, 1, 0) : nullptr;
  data::Prefetcher prefetcher(store, po);
  data::SamplerOptions so;
  so.batch_size = o.batch;
  const auto& split = store->split("train");
  data::ShardSampler sampler(static_cast<int64_t>(split.size()), 0, 1, so);

  int64_t slices = 0, batches = 0, epoch = 0, step = 0;
  core::Stopwatch clock;
  double elapsed = 0;
  while (elapsed < o.seconds) {
    prefetcher.start(data::map_indices(sampler.epoch(epoch), split), step);
    while (elapsed < o.seconds) {
      std::optional<data::Batch> b = prefetcher.next();
      if (!b) break;
#if STRATA_WITH_CUDA
      if (device.is_cuda()) c10::cuda::getCurrentCUDAStream(device.index()).synchronize();
#endif
      if (step_ms > 0) {
        if (o.step_kind == "compute") {
          compute_for(step_ms);
        } else {
          std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(step_ms));
        }
      }
      slices += b->images.size(0);
      ++batches;
      ++step;
      elapsed = clock.seconds();
    }
    ++epoch;
  }
  prefetcher.stop();
  data::PrefetchStats s = prefetcher.stats();
  fmt::print("{{\"bench\": \"loader\", \"size\": {}, \"device\": \"{}\", \"workers\": {}, \"depth\": {}, \"batch\": {}, "
             "\"augment\": \"{}\", \"step_ms\": {}, \"step_kind\": \"{}\", \"image_dtype\": \"{}\", \"batches\": {}, "
             "\"slices_per_s\": {:.0f}, \"data_wait\": {:.4f}, \"wait_ms_per_batch\": {:.3f}, \"mean_ready\": {:.2f}, "
             "\"read_ms_per_batch\": {:.3f}, \"prepare_ms_per_batch\": {:.3f}}}\n",
             store->height(), device.str(), workers, o.depth, o.batch, augment ? "on" : "off", step_ms, o.step_kind,
             o.image_dtype, batches, static_cast<double>(slices) / elapsed, s.wait_s / elapsed,
             1e3 * s.wait_s / static_cast<double>(std::max<int64_t>(batches, 1)), s.mean_ready,
             1e3 * s.read_s / static_cast<double>(std::max<int64_t>(s.batches, 1)),
             1e3 * s.prepare_s / static_cast<double>(std::max<int64_t>(s.batches, 1)));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Input pipeline throughput and data-wait fraction (JSON lines)", "loader_bench"};
  app.add_option("--file", o.file, "packed .h5 file; default: synthesise and pack at 128 and 240");
  app.add_option("--workers", o.workers, "reader threads (default: sweep 1..hardware threads)");
  app.add_option("--augment", o.augment, "on | off | both")->check(CLI::IsMember({"on", "off", "both"}));
  app.add_option("--step-ms", o.step_ms, "simulated step time(s) in ms, comma separated")->delimiter(',');
  app.add_option("--step-kind", o.step_kind, "sleep | compute")->check(CLI::IsMember({"sleep", "compute"}));
  app.add_option("--batch", o.batch, "slices per batch")->check(CLI::PositiveNumber);
  app.add_option("--depth", o.depth, "queue depth")->check(CLI::PositiveNumber);
  app.add_option("--seconds", o.seconds, "seconds per run")->check(CLI::PositiveNumber);
  app.add_option("--device", o.device, "auto | cpu | cuda")->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_option("--image-dtype", o.image_dtype, "float32 | float16")->check(CLI::IsMember({"float32", "float16"}));
  app.add_option("--cases", o.cases, "synthetic cases (without --file)")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  try {
    const bool cuda = o.device == "cuda" || (o.device == "auto" && torch::cuda::is_available());
    const c10::Device device = cuda ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
    std::unique_ptr<bench::BenchData> data;
    std::vector<std::string> files{o.file};
    if (o.file.empty()) {
      data = std::make_unique<bench::BenchData>(o.cases, dataprep::Dims3{240, 240, 155}, std::vector<int64_t>{128, 240},
                                                0);
      files = {data->file(128), data->file(240)};
    }
    const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    std::vector<int> worker_counts;
    if (o.workers > 0) {
      worker_counts = {o.workers};
    } else {
      for (int w = 1; w <= hw; ++w) worker_counts.push_back(w);
    }
    std::vector<bool> augments;
    if (o.augment != "on") augments.push_back(false);
    if (o.augment != "off") augments.push_back(true);
    for (const auto& f : files) {
      auto store = std::make_shared<const data::SliceStore>(f);
      for (double step_ms : o.step_ms) {
        for (bool augment : augments) {
          for (int w : worker_counts) run_once(store, o, device, w, augment, step_ms);
        }
      }
    }
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "loader_bench: {}\n", e.what());
    return 1;
  }
}
