// store_bench: SliceStore read throughput, random batches from 1..N threads, on both
// read paths (direct preadv + own Fletcher-32 check, lock-free; and H5Dread under the
// HDF5 lock). One JSON line per (file, path, threads): slices/s and MB/s of payload
// (images + labels). Without --file it synthesises and packs its own data at 128^2
// and 240^2 (and reports pack speed). Reads hit the page cache once the file has
// been read, so the figures are the CPU cost of a read: the steady state when the
// dataset fits in RAM.
//
// --volumes: the files are packed volumes (VolumeStore); each read is one box of
// --box^3 voxels (images and labels) at a random origin inside a random case, read by
// hyperslab through the overlapping chunks. One JSON line per thread count: boxes/s.
//
//   build/bin/store_bench [--file F.h5 ...] [--threads N] [--batch 32] [--seconds 2]
//                         [--path both|direct|hdf5] [--cases 8] [--shape 240,240,155]
//   build/bin/store_bench --volumes --file V.h5 [--box 64] [--threads N] [--seconds 2]
#include "bench_data.h"
#include "strata/core/timer.h"
#include "strata/data/slice_store.h"
#include "strata/data/volume_store.h"
#include "strata/data/random.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <atomic>
#include <functional>
#include <memory>
#include <thread>

namespace {

using namespace strata;

struct Options {
  std::vector<std::string> files;   // packed files; empty: synthesise
  int threads = 0;                  // largest thread count (0: hardware threads)
  int64_t batch = 32;               // slices per read
  double seconds = 2.0;             // per measurement
  std::string path = "both";        // both | direct | hdf5
  int64_t cases = 8;                // synthetic cases when no --file
  std::vector<int64_t> shape{240, 240, 155};
  bool volumes = false;             // the files are packed volumes: read boxes
  int64_t box = 64;                 // box side (--volumes)
};

// One reader per thread (its own buffers): reads once with `rng`, returns the items read.
using Reader = std::function<int64_t(data::Rng&)>;

// Runs a reader from `make` on each of `threads` threads for `seconds`; returns the items read.
int64_t measure_readers(const std::function<Reader()>& make, int threads, double seconds, double* elapsed) {
  std::atomic<bool> stop{false};
  std::atomic<int64_t> items{0};
  std::vector<std::thread> pool;
  core::Stopwatch clock;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      data::Rng rng(static_cast<uint64_t>(t) + 1);
      Reader read = make();
      while (!stop.load(std::memory_order_relaxed)) items += read(rng);
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : pool) t.join();
  *elapsed = clock.seconds();
  return items.load();
}

// Reads random batches on `threads` threads for `seconds`; returns slices read.
int64_t measure(const data::SliceStore& store, int threads, int64_t batch, double seconds, double* elapsed) {
  return measure_readers([&]() -> Reader {
    auto idx = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(batch));
    auto images = std::make_shared<std::vector<c10::Half>>(static_cast<size_t>(store.image_bytes() / 2 * batch));
    auto labels = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(store.label_bytes() * batch));
    return [&store, batch, idx, images, labels](data::Rng& rng) {
      for (auto& i : *idx) i = rng.below(store.num_slices());
      store.read(idx->data(), batch, images->data(), labels->data());
      return batch;
    };
  }, threads, seconds, elapsed);
}

// Boxes of side `side` at random origins inside random cases (clamped to the case when it is smaller).
Reader box_reader(const data::VolumeStore& store, int64_t side) {
  const data::Index3 size{side, side, side};
  auto image = std::make_shared<std::vector<c10::Half>>(static_cast<size_t>(store.channels() * side * side * side));
  auto label = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(side * side * side));
  return [&store, size, image, label](data::Rng& rng) -> int64_t {
    const int64_t c = rng.below(store.num_cases());
    const data::Index3& shape = store.volume_case(c).shape;
    data::Index3 origin{};
    for (size_t a = 0; a < 3; ++a) origin[a] = rng.below(std::max<int64_t>(1, shape[a] - size[a] + 1));
    store.read_box(c, origin, size, image->data(), label->data());
    return 1;
  };
}

void bench_volumes(const std::string& file, const Options& o) {
  int max_threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  core::Stopwatch open_clock;
  data::VolumeStore store(file);
  const double open_s = open_clock.seconds();
  auto make = [&] { return box_reader(store, o.box); };
  double warm = 0;
  measure_readers(make, 1, 0.2, &warm);  // page the file in
  const double box_mb = static_cast<double>(o.box * o.box * o.box * (2 * store.channels() + 1)) / 1e6;
  for (int threads = 1; threads <= max_threads; ++threads) {
    double elapsed = 0;
    const double per_s = static_cast<double>(measure_readers(make, threads, o.seconds, &elapsed)) / elapsed;
    fmt::print("{{\"bench\": \"volume_store\", \"box\": {}, \"threads\": {}, \"cases\": {}, \"boxes_per_s\": {:.1f}, "
               "\"mb_per_s\": {:.1f}, \"open_s\": {:.3f}, \"file\": \"{}\"}}\n", o.box, threads, store.num_cases(),
               per_s, per_s * box_mb, open_s, file);
    std::fflush(stdout);
  }
}

void bench_file(const std::string& file, const Options& o) {
  int max_threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (data::ReadPath path : {data::ReadPath::kDirect, data::ReadPath::kHdf5}) {
    if (o.path != "both" && o.path != data::read_path_name(path)) continue;
    data::SliceStoreOptions so;
    so.read_path = path;
    core::Stopwatch open_clock;
    data::SliceStore store(file, so);
    double open_s = open_clock.seconds();
    double warm = 0;
    measure(store, 1, o.batch, 0.2, &warm);  // page the file in
    for (int threads = 1; threads <= max_threads; ++threads) {
      double elapsed = 0;
      int64_t slices = measure(store, threads, o.batch, o.seconds, &elapsed);
      double per_s = static_cast<double>(slices) / elapsed;
      double mb_s = per_s * static_cast<double>(store.image_bytes() + store.label_bytes()) / 1e6;
      fmt::print("{{\"bench\": \"store\", \"size\": {}, \"path\": \"{}\", \"threads\": {}, \"batch\": {}, "
                 "\"slices\": {}, \"slices_per_s\": {:.0f}, \"mb_per_s\": {:.1f}, \"open_s\": {:.3f}, "
                 "\"file\": \"{}\"}}\n",
                 store.height(), data::read_path_name(store.read_path()), threads, o.batch, store.num_slices(), per_s,
                 mb_s, open_s, file);
      std::fflush(stdout);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"SliceStore read throughput from 1..N threads (JSON lines)", "store_bench"};
  app.add_option("--file", o.files, "packed .h5 file(s); default: synthesise and pack at 128 and 240");
  app.add_option("--threads", o.threads, "largest thread count (default: hardware threads)");
  app.add_option("--batch", o.batch, "slices per read")->check(CLI::PositiveNumber);
  app.add_option("--seconds", o.seconds, "seconds per measurement")->check(CLI::PositiveNumber);
  app.add_option("--path", o.path, "both | direct | hdf5")->check(CLI::IsMember({"both", "direct", "hdf5"}));
  app.add_option("--cases", o.cases, "synthetic cases (without --file)")->check(CLI::PositiveNumber);
  app.add_option("--shape", o.shape, "synthetic volume shape X Y Z (without --file)")->expected(3)->delimiter(',');
  app.add_flag("--volumes", o.volumes, "the --file(s) are packed volumes: read boxes (VolumeStore::read_box)");
  app.add_option("--box", o.box, "box side in voxels (--volumes)")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  try {
    if (o.volumes) {
      if (o.files.empty()) {
        throw std::runtime_error("--volumes needs --file: pack one with `brats_recipe pack --volumes`");
      }
      for (const auto& f : o.files) bench_volumes(f, o);
      return 0;
    }
    std::unique_ptr<bench::BenchData> data;
    std::vector<std::string> files = o.files;
    if (files.empty()) {
      data = std::make_unique<bench::BenchData>(o.cases, dataprep::Dims3{o.shape[0], o.shape[1], o.shape[2]},
                                                std::vector<int64_t>{128, 240}, 0);
      files = {data->file(128), data->file(240)};
    }
    for (const auto& f : files) bench_file(f, o);
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "store_bench: {}\n", e.what());
    return 1;
  }
}
