// allreduce_bench: allreduce bandwidth of a Strata communicator, message sizes from
// 4 KiB to 256 MiB. One JSON line per size on rank 0, nccl-tests conventions:
// algbw = bytes / time, busbw = algbw * 2(n-1)/n (the per-link traffic of a ring
// allreduce, comparable across rank counts). Time per op is the slowest rank's mean
// over `iters` back-to-back collectives. Each size is also checked once for
// correctness; the error count is reduced so every rank agrees.
//
//   mpirun -np 2 build/bin/allreduce_bench [--backend auto|mpi|nccl] [--min-bytes N] [--max-bytes N]
#include "strata/comm/communicator.h"
#include "strata/comm/world.h"
#include "strata/core/error.h"
#include "strata/core/log.h"
#include "strata/core/timer.h"

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <algorithm>

namespace {

using namespace strata;

struct BenchOptions {
  std::string backend = "auto";   // auto: nccl on a GPU, mpi on CPU
  std::string device = "auto";    // auto | cpu | cuda
  int64_t min_bytes = 4 << 10;    // smallest message
  int64_t max_bytes = 256 << 20;  // largest message
  int64_t budget_bytes = 4ll << 30;  // per size: iters = clamp(budget / bytes, min_iters, max_iters)
  int min_iters = 5;
  int max_iters = 200;
  int warmup = 3;
};

// Rank-derived pattern (r + 1) * (i % 7 + 1) and its closed-form sum; returns the
// number of wrong elements on every rank.
int64_t check_once(const comm::World& world, comm::Communicator& c, int64_t numel, torch::Device dev) {
  auto i = torch::arange(numel, torch::TensorOptions().dtype(torch::kFloat).device(dev));
  auto t = (torch::fmod(i, 7) + 1) * (c.rank() + 1);
  c.allreduce({t}, comm::ReduceOp::kSum);
  auto expected = (torch::fmod(i, 7) + 1) * (c.size() * (c.size() + 1) / 2);
  auto bad = static_cast<double>((t != expected).sum().item<int64_t>());
  return static_cast<int64_t>(world.sum_over_ranks(bad));
}

int run(comm::World& world, const BenchOptions& o) {
  torch::Device dev = world.bind_device(o.device);
  auto c = comm::make_communicator(world, dev, o.backend);
  const int n = c->size();
  int64_t total_errors = 0;
  for (int64_t bytes = o.min_bytes; bytes <= o.max_bytes; bytes *= 2) {
    int64_t numel = bytes / 4;
    auto buf = torch::zeros({numel}, torch::TensorOptions().dtype(torch::kFloat).device(dev));
    int iters = static_cast<int>(std::clamp<int64_t>(o.budget_bytes / bytes, o.min_iters, o.max_iters));
    for (int k = 0; k < o.warmup; ++k) c->allreduce({buf});
    world.barrier();
    core::Stopwatch clock;
    std::shared_ptr<comm::Work> last;
    for (int k = 0; k < iters; ++k) last = c->allreduce_async({buf}, comm::ReduceOp::kSum);
    last->synchronize();
    double seconds = world.max_over_ranks(clock.seconds() / iters);
    int64_t errors = check_once(world, *c, numel, dev);
    total_errors += errors;
    double algbw = static_cast<double>(bytes) / seconds / 1e9;
    double busbw = algbw * 2.0 * (n - 1) / n;
    if (world.rank() == 0) {
      fmt::print(
          "{{\"bench\": \"allreduce\", \"backend\": \"{}\", \"device\": \"{}\", \"ranks\": {}, \"dtype\": \"float32\", "
          "\"bytes\": {}, \"iters\": {}, \"seconds\": {:.6g}, \"algbw_gbps\": {:.4f}, \"busbw_gbps\": {:.4f}, "
          "\"errors\": {}}}\n",
          c->backend(), dev.str(), n, bytes, iters, seconds, algbw, busbw, errors);
      std::fflush(stdout);
    }
  }
  STRATA_CHECK_AS(CommError, total_errors == 0, "allreduce produced {} wrong elements", total_errors);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  BenchOptions o;
  CLI::App app{"Allreduce bandwidth of Strata's communicators (JSON lines on rank 0)", "allreduce_bench"};
  app.add_option("--backend", o.backend, "auto | mpi | nccl")->check(CLI::IsMember({"auto", "mpi", "nccl"}));
  app.add_option("--device", o.device, "auto | cpu | cuda")->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_option("--min-bytes", o.min_bytes, "smallest message in bytes (default 4 KiB)")->check(CLI::PositiveNumber);
  app.add_option("--max-bytes", o.max_bytes, "largest message in bytes (default 256 MiB)")->check(CLI::PositiveNumber);
  app.add_option("--budget-bytes", o.budget_bytes, "bytes moved per size; sets the iteration count");
  app.add_option("--warmup", o.warmup, "untimed collectives per size");
  CLI11_PARSE(app, argc, argv);
  comm::World world(&argc, &argv);
  try {
    return run(world, o);
  } catch (const std::exception& e) {
    world.abort_all(fmt::format("allreduce_bench: {}", e.what()));
  }
}
