// Collective watchdog and flight recorder (see watchdog.h).
#include "strata/comm/watchdog.h"

#include "strata/comm/checks.h"
#include "strata/core/files.h"
#include "strata/core/log.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <optional>

namespace strata::comm {
namespace {

// Messages on the watchdog's own communicator (never mixed with the job's collectives).
constexpr int kTagRequest = 71;  // "where are you?" (empty)
constexpr int kTagStatus = 72;   // the answer: status_json()
constexpr int kTagNotice = 73;   // "the job ends": the message of the rank that timed out

nlohmann::json to_json(const CollectiveRecord& r) {
  return {{"seq", r.seq},          {"channel", channel_name(r.channel)}, {"op", r.op},
          {"bytes", r.bytes},      {"bucket", r.bucket},                 {"step", r.step},
          {"issued_s", r.issued_s}, {"start_s", r.start_s},              {"end_s", r.end_s}};
}

std::string describe(const CollectiveRecord& r) {
  std::string what = fmt::format("{} #{} {}", channel_name(r.channel), r.seq, r.op);
  if (r.bytes > 0) what += fmt::format(" of {} bytes", r.bytes);
  if (r.bucket >= 0) what += fmt::format(" (bucket {})", r.bucket);
  if (r.step >= 0) what += fmt::format(" at step {}", r.step);
  return what;
}

}  // namespace

const char* channel_name(Channel channel) { return channel == Channel::kWorld ? "world" : "comm"; }

Watchdog::Watchdog(MPI_Comm world, int rank, int size, WatchdogOptions options)
    : rank_(rank), size_(size), options_(std::move(options)), epoch_(std::chrono::steady_clock::now()) {
  MPI_CHECK(MPI_Comm_dup(world, &side_));
  MPI_CHECK(MPI_Comm_set_errhandler(side_, MPI_ERRORS_RETURN));
  thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (side_ != MPI_COMM_NULL) MPI_Comm_free(&side_);
}

double Watchdog::now() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_).count();
}

int64_t Watchdog::begin(Channel channel, const char* op, int64_t bytes, int bucket, std::function<bool()> probe) {
  std::lock_guard<std::mutex> lock(mutex_);
  CollectiveRecord r;
  r.id = next_id_++;
  r.channel = channel;
  r.seq = ++next_seq_[channel];
  r.op = op;
  r.bytes = bytes;
  r.bucket = bucket;
  r.step = step_.load();
  r.issued_s = now();
  ring_.push_back(std::move(r));
  // Keep the last `capacity` records, but never drop one still in flight.
  while (ring_.size() > options_.capacity && ring_.front().end_s >= 0) ring_.pop_front();
  if (probe) probes_.emplace(ring_.back().id, std::move(probe));
  return ring_.back().id;
}

void Watchdog::start(int64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = ring_.rbegin(); it != ring_.rend(); ++it) {
    if (it->id == id) {
      it->start_s = now();
      return;
    }
  }
}

void Watchdog::end(int64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  probes_.erase(id);
  for (auto it = ring_.rbegin(); it != ring_.rend(); ++it) {
    if (it->id == id) {
      it->end_s = now();
      last_done_[it->channel] = std::max(last_done_[it->channel], it->seq);
      return;
    }
  }
}

void Watchdog::set_flight_dir(const std::string& dir) {
  std::lock_guard<std::mutex> lock(mutex_);
  options_.flight_dir = dir;
}

void Watchdog::set_timeout(double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  options_.timeout_s = seconds;
}

double Watchdog::timeout() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return options_.timeout_s;
}

int Watchdog::add_abort_hook(std::function<void()> hook) {
  std::lock_guard<std::mutex> lock(mutex_);
  hooks_.emplace(next_hook_, std::move(hook));
  return next_hook_++;
}

void Watchdog::remove_abort_hook(int handle) {
  std::lock_guard<std::mutex> lock(mutex_);
  hooks_.erase(handle);
}

void Watchdog::set_abort_action_for_test(std::function<void(const std::string&)> action) {
  std::lock_guard<std::mutex> lock(mutex_);
  abort_action_ = std::move(action);
}

std::string Watchdog::fired_message() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return fired_;
}

std::vector<CollectiveRecord> Watchdog::records() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return {ring_.begin(), ring_.end()};
}

std::string Watchdog::status_json() const {
  std::lock_guard<std::mutex> lock(mutex_);
  nlohmann::json open = nlohmann::json::array();
  const double t = now();
  for (const auto& r : ring_) {
    if (r.end_s >= 0) continue;
    auto j = to_json(r);
    j["waited_s"] = r.start_s >= 0 ? t - r.start_s : 0.0;
    open.push_back(j);
  }
  nlohmann::json done = nlohmann::json::object();
  for (auto c : {Channel::kWorld, Channel::kComm}) {
    auto it = last_done_.find(c);
    done[channel_name(c)] = it == last_done_.end() ? 0 : it->second;
  }
  return nlohmann::json{{"rank", rank_}, {"step", step_.load()}, {"done", done}, {"open", open}}.dump();
}

std::string Watchdog::dump(const std::string& reason) const {
  std::string dir;
  nlohmann::json records = nlohmann::json::array();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    dir = options_.flight_dir;
    for (const auto& r : ring_) records.push_back(to_json(r));
  }
  if (dir.empty()) return "";
  const auto& id = core::log_identity();
  nlohmann::json j{{"rank", rank_},   {"size", size_},        {"host", id.host},
                   {"reason", reason}, {"step", step_.load()}, {"now_s", now()},
                   {"timeout_s", timeout()}, {"records", records}};
  const std::string path = (std::filesystem::path(dir) / fmt::format("rank-{}.json", rank_)).string();
  try {
    core::write_file_atomic(path, j.dump(1) + "\n", "flight record");
  } catch (const std::exception& e) {
    core::warn("cannot write the flight record {}: {}", path, e.what());
    return "";
  }
  return path;
}

// ---------------------------------------------------------------- the thread

void Watchdog::run() {
  while (!stop_) {
    service_requests();
    check_timeouts();
    reap_sends(false);
    std::this_thread::sleep_for(std::chrono::duration<double>(options_.poll_s));
  }
  reap_sends(true);
}

void Watchdog::send_async(int dest, int tag, std::string payload) {
  auto buf = std::make_shared<std::string>(std::move(payload));
  MPI_Request req = MPI_REQUEST_NULL;
  if (MPI_Isend(buf->data(), static_cast<int>(buf->size()), MPI_CHAR, dest, tag, side_, &req) == MPI_SUCCESS) {
    sends_.emplace_back(req, std::move(buf));
  }
}

void Watchdog::reap_sends(bool all) {
  for (auto it = sends_.begin(); it != sends_.end();) {
    int done = 0;
    MPI_Test(&it->first, &done, MPI_STATUS_IGNORE);
    if (!done && all) {  // shutting down: a peer that never receives it must not hold us
      MPI_Cancel(&it->first);
      MPI_Request_free(&it->first);
      done = 1;
    }
    it = done ? sends_.erase(it) : std::next(it);
  }
}

void Watchdog::service_requests() {
  for (;;) {
    int flag = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, side_, &flag, &st) != MPI_SUCCESS || !flag) return;
    int count = 0;
    MPI_Get_count(&st, MPI_CHAR, &count);
    std::string msg(static_cast<size_t>(std::max(count, 0)), '\0');
    MPI_Recv(msg.data(), count, MPI_CHAR, st.MPI_SOURCE, st.MPI_TAG, side_, MPI_STATUS_IGNORE);
    if (st.MPI_TAG == kTagRequest) {
      send_async(st.MPI_SOURCE, kTagStatus, status_json());
    } else if (st.MPI_TAG == kTagNotice) {
      on_notice(st.MPI_SOURCE, msg);
    }  // a late kTagStatus (after a gather gave up) is dropped
  }
}

void Watchdog::check_timeouts() {
  std::optional<CollectiveRecord> stalled;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const double t = now();
    for (auto& r : ring_) {
      if (r.end_s >= 0) continue;
      auto p = probes_.find(r.id);
      if (p != probes_.end() && p->second()) {
        r.end_s = t;
        last_done_[r.channel] = std::max(last_done_[r.channel], r.seq);
        probes_.erase(p);
        continue;
      }
      if (!stalled && r.start_s >= 0 && t - r.start_s > options_.timeout_s) stalled = r;
    }
  }
  if (stalled && !firing_.exchange(true)) on_timeout(*stalled);
}

// Asks every other rank where it is and says which ranks are behind on `stalled`.
std::string Watchdog::gather_view(const CollectiveRecord& stalled) {
  for (int r = 0; r < size_; ++r) {
    if (r != rank_) send_async(r, kTagRequest, "");
  }
  std::map<int, nlohmann::json> answers;
  const double deadline = now() + options_.answer_s;
  while (static_cast<int>(answers.size()) < size_ - 1 && now() < deadline) {
    int flag = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, side_, &flag, &st) == MPI_SUCCESS && flag) {
      int count = 0;
      MPI_Get_count(&st, MPI_CHAR, &count);
      std::string msg(static_cast<size_t>(std::max(count, 0)), '\0');
      MPI_Recv(msg.data(), count, MPI_CHAR, st.MPI_SOURCE, st.MPI_TAG, side_, MPI_STATUS_IGNORE);
      if (st.MPI_TAG == kTagStatus) {
        answers[st.MPI_SOURCE] = nlohmann::json::parse(msg, nullptr, false);
      } else if (st.MPI_TAG == kTagRequest) {  // another rank timed out at the same moment
        send_async(st.MPI_SOURCE, kTagStatus, status_json());
      }
      continue;
    }
    reap_sends(false);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // A rank is behind when it did not answer (stopped, hung, dead) or has not started
  // the stalled collective (busy outside communication: reading data, computing, stuck).
  const std::string ch = channel_name(stalled.channel);
  std::vector<std::string> behind;
  std::vector<int> waiting;
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) {
      waiting.push_back(r);
      continue;
    }
    auto it = answers.find(r);
    if (it == answers.end() || it->second.is_discarded()) {
      behind.push_back(fmt::format("rank {} did not answer within {} s (stopped, hung or dead)", r,
                                   options_.answer_s));
      continue;
    }
    const auto& a = it->second;
    bool inside = false;
    std::string where = "not in a collective";
    for (const auto& o : a["open"]) {
      if (o["channel"] == ch && o["seq"] == stalled.seq && o["start_s"].get<double>() >= 0) inside = true;
      if (o["start_s"].get<double>() >= 0) {
        where = fmt::format("in {} #{} {} for {:.0f} s", o["channel"].get<std::string>(), o["seq"].get<int64_t>(),
                            o["op"].get<std::string>(), o["waited_s"].get<double>());
      }
    }
    const int64_t done = a["done"].value(ch, int64_t{0});
    if (inside || done >= stalled.seq) {
      waiting.push_back(r);
    } else {
      behind.push_back(fmt::format("rank {} (step {}, last {} #{} done, {})", r, a["step"].get<int64_t>(), ch, done,
                                   where));
    }
  }
  if (behind.empty()) {
    return fmt::format("every rank answered and reached it (ranks {}); the transport itself is stuck",
                       fmt::join(waiting, ", "));
  }
  return fmt::format("behind: {}; waiting in it: rank{} {}", fmt::join(behind, "; "), waiting.size() > 1 ? "s" : "",
                     fmt::join(waiting, ", "));
}

void Watchdog::on_timeout(const CollectiveRecord& stalled) {
  const double waited = now() - stalled.start_s;
  std::string view = size_ > 1 ? gather_view(stalled) : "a single rank: nothing else to wait for";
  std::string message =
      fmt::format("collective {} did not complete within run.comm_timeout_s = {} s on rank {}/{} (waited {:.1f} s); {}",
                  describe(stalled), timeout(), rank_, size_, waited, view);
  for (int r = 0; r < size_; ++r) {
    if (r != rank_) send_async(r, kTagNotice, message);
  }
  finish(message);
}

void Watchdog::on_notice(int from, const std::string& message) {
  if (firing_.exchange(true)) return;  // this rank has already printed its one error
  std::string mine = "not in a collective";
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& r : ring_) {
      if (r.end_s < 0 && r.start_s >= 0) mine = fmt::format("in {} for {:.1f} s", describe(r), now() - r.start_s);
    }
  }
  finish(fmt::format("the job ends on rank {}'s timeout (this rank: {}): {}", from, mine, message));
}

void Watchdog::finish(const std::string& message) {
  std::string path = dump(message);
  core::log_message(core::LogLevel::kError,
                    "comm error: " + message + (path.empty() ? "" : fmt::format(" (flight record: {})", path)));
  std::function<void(const std::string&)> action;
  std::vector<std::function<void()>> hooks;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    fired_ = message;
    action = abort_action_;
    for (auto& h : hooks_) hooks.push_back(h.second);
  }
  // Let the notices reach the other ranks and let them print before the job ends.
  const double until = now() + options_.grace_s;
  while (now() < until) {
    reap_sends(false);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (action) {
    action(message);
    return;
  }
  for (auto& h : hooks) h();
  MPI_Abort(MPI_COMM_WORLD, 1);
}

}  // namespace strata::comm
