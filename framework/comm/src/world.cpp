// MPI world: init, local rank, device binding, config consistency, aborts (see world.h).
#include "strata/comm/world.h"

#include "strata/comm/checks.h"
#include "strata/comm/cuda_backend.h"
#include "strata/core/build_info.h"
#include "strata/core/config.h"
#include "strata/core/log.h"

#include <torch/cuda.h>
#if STRATA_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <numeric>
#include <regex>
#include <thread>
#include <vector>

namespace strata::comm {

namespace detail {
std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return fmt::format("MPI error {}", code);
  return std::string(text, len);
}
}  // namespace detail

World::World(int* argc, char*** argv) {
  int initialized = 0;
  MPI_CHECK(MPI_Initialized(&initialized));
  if (initialized) {
    MPI_CHECK(MPI_Query_thread(&thread_level_));
  } else {
    // Read by Open MPI at init (other MPIs ignore it). On 2 cores with 2 ranks of one thread,
    // a spinning all-reduce beside backward cost 11% of the step (docs/benchmarks.md).
    setenv("OMPI_MCA_mpi_yield_when_idle", "1", /*overwrite=*/0);
    MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &thread_level_));
    owns_mpi_ = true;
  }
  MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm_));
  MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  MPI_CHECK(MPI_Comm_size(comm_, &size_));

  MPI_Comm node = MPI_COMM_NULL;
  MPI_CHECK(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
  MPI_CHECK(MPI_Comm_rank(node, &local_rank_));
  MPI_CHECK(MPI_Comm_size(node, &local_size_));
  MPI_CHECK(MPI_Comm_free(&node));

  char name[MPI_MAX_PROCESSOR_NAME];
  int len = 0;
  MPI_CHECK(MPI_Get_processor_name(name, &len));
  host_.assign(name, len);
  core::set_log_identity({rank_, size_, host_, ""});
  if (!thread_multiple()) {
    core::warn0("MPI granted thread level {} < MPI_THREAD_MULTIPLE: the MPI communicator will refuse to start",
                thread_level_);
  }
}

std::unique_ptr<World> World::split(int color, const std::string& label) const {
  std::unique_ptr<World> group(new World());
  MPI_CHECK(MPI_Comm_split(comm_, color, rank_, &group->comm_));
  MPI_CHECK(MPI_Comm_set_errhandler(group->comm_, MPI_ERRORS_RETURN));
  MPI_CHECK(MPI_Comm_rank(group->comm_, &group->rank_));
  MPI_CHECK(MPI_Comm_size(group->comm_, &group->size_));
  group->local_rank_ = local_rank_;
  group->local_size_ = local_size_;
  group->thread_level_ = thread_level_;
  group->host_ = host_;
  group->label_ = label;
  group->parent_identity_ = core::log_identity();
  core::set_log_identity({group->rank_, group->size_, host_, label});
  return group;
}

void World::wait_for_all(int poll_ms) const {
  MPI_Request request = MPI_REQUEST_NULL;
  MPI_CHECK(MPI_Ibarrier(comm_, &request));
  for (int done = 0;;) {
    MPI_CHECK(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
    if (done) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
  }
}

World::~World() {
  watchdog_.reset();  // its thread uses MPI
  if (!label_.empty()) core::set_log_identity(parent_identity_);
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (owns_mpi_ && !finalized) MPI_Finalize();
}

torch::Device World::bind_device(const std::string& prefer) const {
  if (prefer != "auto" && prefer != "cpu" && prefer != "cuda") {
    STRATA_THROW(ConfigError, "device must be auto, cpu or cuda, got '{}'", prefer);
  }
  const std::string no_backend = prefer == "cpu" ? "" : load_cuda_backend();
  bool have_cuda = prefer != "cpu" && no_backend.empty() && torch::cuda::is_available();
  if (prefer == "cuda" && !have_cuda) {
    STRATA_THROW(ConfigError, "device 'cuda' requested but no CUDA device is visible on {}{}", host_,
                 no_backend.empty() ? "" : fmt::format(" (torch's CUDA backend did not load: {})", no_backend));
  }
  if (prefer == "cpu" || !have_cuda) return torch::Device(torch::kCPU);
#if STRATA_WITH_CUDA
  int count = static_cast<int>(torch::cuda::device_count());
  int index = local_rank_ % count;
  if (local_size_ > count) {
    core::warn("{} ranks on {} share {} GPUs; NCCL refuses two ranks on one GPU", local_size_, host_, count);
  }
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(index));
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
#else
  return torch::Device(torch::kCPU);
#endif
}

void World::start_watchdog(WatchdogOptions options) {
  if (watchdog_) {
    watchdog_->set_timeout(options.timeout_s);
    watchdog_->set_flight_dir(options.flight_dir);
    return;
  }
  watchdog_ = std::make_unique<Watchdog>(comm_, rank_, size_, std::move(options));
}

std::vector<std::string> World::all_gather(const std::string& mine) const {
  WatchedCall watched(watchdog_.get(), Channel::kWorld, "allgather(text)", static_cast<int64_t>(mine.size()));
  int len = static_cast<int>(mine.size());
  std::vector<int> lens(size_), offsets(size_, 0);
  MPI_CHECK(MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, comm_));
  for (int r = 1; r < size_; ++r) offsets[r] = offsets[r - 1] + lens[r - 1];
  std::string all(static_cast<size_t>(offsets.back() + lens.back()), '\0');
  MPI_CHECK(MPI_Allgatherv(mine.data(), len, MPI_CHAR, all.data(), lens.data(), offsets.data(), MPI_CHAR, comm_));
  std::vector<std::string> out;
  for (int r = 0; r < size_; ++r) out.push_back(all.substr(static_cast<size_t>(offsets[r]), static_cast<size_t>(lens[r])));
  return out;
}

void World::check_same_config(uint64_t hash, const std::string& yaml, const std::string& what) const {
  std::vector<uint64_t> all(size_);
  {
    WatchedCall watched(watchdog_.get(), Channel::kWorld, "allgather(config hash)", sizeof(hash) * size_);
    MPI_CHECK(MPI_Allgather(&hash, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, comm_));
  }
  if (std::all_of(all.begin(), all.end(), [&](uint64_t h) { return h == all[0]; })) return;
  // Built from gathered data only, so every rank throws the same text.
  std::vector<std::string> texts = all_gather(yaml);
  std::vector<std::string> hosts = all_gather(host_);
  std::vector<std::string> parts;
  for (int r = 1; r < size_; ++r) {
    if (all[r] == all[0]) continue;
    parts.push_back(fmt::format("rank {} on {} differs from rank 0 on {} in {} (hash {} vs {})", r, hosts[r],
                                hosts[0], fmt::join(core::diff_yaml(texts[0], texts[r]), "; "),
                                core::hash_hex(all[r]), core::hash_hex(all[0])));
  }
  core::throw_on_every_rank(core::ConfigError(fmt::format(
      "ranks disagree on the {} (rank 0's value -> theirs): {}. Launch every rank with the same --config and --set "
      "flags", what, fmt::join(parts, "; "))));
}

std::string World::describe_hosts() const {
  // "host local_rank" of every rank; hosts listed in the order of their first rank.
  std::vector<std::string> all = all_gather(fmt::format("{} {}", local_rank_, host_));
  std::vector<std::pair<std::string, std::vector<std::pair<int, int>>>> hosts;  // host -> (rank, local rank)
  for (int r = 0; r < size_; ++r) {
    const auto space = all[r].find(' ');
    const int local = std::stoi(all[r].substr(0, space));
    const std::string host = all[r].substr(space + 1);
    auto it = std::find_if(hosts.begin(), hosts.end(), [&](const auto& h) { return h.first == host; });
    if (it == hosts.end()) it = hosts.insert(hosts.end(), {host, {}});
    it->second.push_back({r, local});
  }
  std::vector<std::string> parts;
  for (const auto& [host, ranks] : hosts) {
    std::vector<int> globals, locals;
    for (const auto& [r, l] : ranks) globals.push_back(r), locals.push_back(l);
    std::vector<int> expected(locals.size());
    std::iota(expected.begin(), expected.end(), 0);
    std::vector<int> sorted = locals;
    std::sort(sorted.begin(), sorted.end());
    if (sorted != expected) {
      core::throw_on_every_rank(core::CommError(fmt::format(
          "host {} runs ranks {} with local ranks {}; expected 0..{}: MPI groups processes into nodes differently "
          "from their host names, so GPUs would be bound wrongly (check the hostfile and that host names are unique)",
          host, fmt::join(globals, ", "), fmt::join(locals, ", "), locals.size() - 1)));
    }
    parts.push_back(fmt::format("{}: rank{} {} (local {})", host, globals.size() > 1 ? "s" : "",
                                fmt::join(globals, ", "), fmt::join(locals, ", ")));
  }
  return fmt::format("{}", fmt::join(parts, "; "));
}

void World::agree(const std::function<void()>& body) const {
  std::string local;  // "<kind>\t<message>" of this rank's error, or empty
  try {
    body();
  } catch (const core::Error& e) {
    local = std::string(e.kind()) + "\t" + e.what();
  }
  if (!any_rank(!local.empty())) return;
  std::vector<std::string> all = all_gather(local);
  // One kind: the first failing rank's (ranks failing differently are listed anyway).
  std::string kind;
  std::vector<std::string> messages;
  for (const auto& a : all) {
    const auto tab = a.find('\t');
    if (tab != std::string::npos && kind.empty()) kind = a.substr(0, tab);
    messages.push_back(tab == std::string::npos ? a : a.substr(tab + 1));
  }
  throw core::AgreedError(kind, merge_errors(messages));
}

std::string World::merge_errors(std::vector<std::string> errors) const {
  // The same mistake on every rank reads the same once the rank is taken out of it.
  static const std::regex kOrigin(", rank [0-9]+/[0-9]+ on [^)]*\\)");
  for (auto& e : errors) e = std::regex_replace(e, kOrigin, ")");
  std::vector<std::pair<std::string, std::vector<int>>> distinct;
  for (int r = 0; r < size_; ++r) {
    if (errors[r].empty()) continue;
    auto it = std::find_if(distinct.begin(), distinct.end(), [&](const auto& d) { return d.first == errors[r]; });
    if (it == distinct.end()) {
      distinct.push_back({errors[r], {r}});
    } else {
      it->second.push_back(r);
    }
  }
  if (distinct.size() == 1 && static_cast<int>(distinct[0].second.size()) == size_) return distinct[0].first;
  std::vector<std::string> parts;
  for (const auto& [message, ranks] : distinct) {
    parts.push_back(fmt::format("on rank{} {}: {}", ranks.size() > 1 ? "s" : "", fmt::join(ranks, ", "), message));
  }
  return fmt::format("{}", fmt::join(parts, " | "));
}

void World::agree_on_error(const std::string& local_error) const {
  if (!any_rank(!local_error.empty())) return;
  core::throw_on_every_rank(core::ConfigError(merge_errors(all_gather(local_error))));
}

void World::barrier() const {
  WatchedCall watched(watchdog_.get(), Channel::kWorld, "barrier", 0);
  MPI_CHECK(MPI_Barrier(comm_));
}

bool World::any_rank(bool flag) const {
  int local = flag ? 1 : 0, any = 0;
  WatchedCall watched(watchdog_.get(), Channel::kWorld, "allreduce(any rank)", sizeof(int));
  MPI_CHECK(MPI_Allreduce(&local, &any, 1, MPI_INT, MPI_LOR, comm_));
  return any != 0;
}

double World::max_over_ranks(double value) const {
  double out = value;
  WatchedCall watched(watchdog_.get(), Channel::kWorld, "allreduce(max)", sizeof(double));
  MPI_CHECK(MPI_Allreduce(&value, &out, 1, MPI_DOUBLE, MPI_MAX, comm_));
  return out;
}

double World::sum_over_ranks(double value) const {
  double out = value;
  WatchedCall watched(watchdog_.get(), Channel::kWorld, "allreduce(sum)", sizeof(double));
  MPI_CHECK(MPI_Allreduce(&value, &out, 1, MPI_DOUBLE, MPI_SUM, comm_));
  return out;
}

void World::abort_all(const std::string& message, int code) const {
  std::string flight = watchdog_ ? watchdog_->dump(message) : "";
  core::log_message(core::LogLevel::kError, flight.empty() ? message : message + " (flight record: " + flight + ")");
  MPI_Abort(MPI_COMM_WORLD, code);
  std::abort();  // MPI_Abort does not return; this keeps [[noreturn]] honest
}

}  // namespace strata::comm
