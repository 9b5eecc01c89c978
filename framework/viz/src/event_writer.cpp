// TensorBoard event files: framing, checksums, writing and trimming (event_writer.h).
#include "strata/viz/event_writer.h"

#include "strata/core/error.h"
#include "strata/core/files.h"
#include "strata/core/log.h"
#include "tb_event.pb.h"

#include <isa-l/crc.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>

namespace fs = std::filesystem;

namespace strata::viz {
namespace {

constexpr uint32_t kMaskDelta = 0xa282ead8u;

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string little_endian(uint64_t v, int bytes) {
  std::string s(bytes, '\0');
  for (int i = 0; i < bytes; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

uint64_t read_little_endian(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

std::string hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return buf;
}

bool is_event_file(const fs::path& p) {
  return p.filename().string().rfind("events.out.tfevents.", 0) == 0 && p.filename().string().find(".tmp.") == std::string::npos;
}

}  // namespace

uint32_t crc32c(std::string_view data) {
  // ISA-L's iSCSI CRC is CRC32C; TensorBoard's convention starts from and finishes with
  // an all-ones register.
  return crc32_iscsi(reinterpret_cast<unsigned char*>(const_cast<char*>(data.data())), static_cast<int>(data.size()),
                     0xffffffffu) ^
         0xffffffffu;
}

uint32_t masked_crc32c(std::string_view data) {
  const uint32_t c = crc32c(data);
  return ((c >> 15) | (c << 17)) + kMaskDelta;
}

std::string frame_record(std::string_view payload) {
  std::string length = little_endian(payload.size(), 8);
  std::string out = length;
  out += little_endian(masked_crc32c(length), 4);
  out.append(payload.data(), payload.size());
  out += little_endian(masked_crc32c(payload), 4);
  return out;
}

std::vector<std::string> read_records(const std::string& path, bool allow_truncated_tail) {
  std::ifstream in(path, std::ios::binary);
  STRATA_CHECK_AS(IoError, in.good(), "cannot open the event file '{}'", path);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> records;
  size_t at = 0;
  while (at < bytes.size()) {
    const size_t left = bytes.size() - at;
    auto truncated = [&] {
      STRATA_CHECK_AS(DataError, allow_truncated_tail, "event file '{}': record at byte {} is cut short ({} bytes left)",
                      path, at, left);
    };
    if (left < 12) { truncated(); break; }
    const std::string_view len_bytes(bytes.data() + at, 8);
    STRATA_CHECK_AS(DataError,
                    read_little_endian(bytes.data() + at + 8, 4) == masked_crc32c(len_bytes),
                    "event file '{}': the length checksum of the record at byte {} does not match", path, at);
    const uint64_t n = read_little_endian(bytes.data() + at, 8);
    if (left < 16 + n) { truncated(); break; }
    const std::string_view payload(bytes.data() + at + 12, n);
    STRATA_CHECK_AS(DataError, read_little_endian(bytes.data() + at + 12 + n, 4) == masked_crc32c(payload),
                    "event file '{}': the data checksum of the record at byte {} does not match", path, at);
    records.emplace_back(payload);
    at += 16 + n;
  }
  return records;
}

std::vector<EventRecord> read_events(const std::string& path, bool allow_truncated_tail) {
  std::vector<EventRecord> out;
  for (const auto& payload : read_records(path, allow_truncated_tail)) {
    tb::Event e;
    STRATA_CHECK_AS(DataError, e.ParseFromString(payload), "event file '{}': record {} is not an Event", path,
                    out.size());
    if (e.has_summary() && e.summary().value_size() > 0) {
      for (const auto& v : e.summary().value()) {
        EventRecord r{e.wall_time(), e.step(), v.has_image() ? "image" : v.value_case() ? "scalar" : "other", v.tag(),
                      v.has_image() ? 0.0 : v.simple_value()};
        out.push_back(r);
      }
      continue;
    }
    EventRecord r{e.wall_time(), e.step(), "other", "", 0};
    if (e.what_case() == tb::Event::kFileVersion) r.kind = "file_version";
    if (e.has_session_log() && e.session_log().status() == tb::SessionLog::START) r.kind = "session_start";
    out.push_back(r);
  }
  return out;
}

int64_t trim_events_after(const std::string& dir, int64_t step) {
  int64_t removed = 0;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file() && is_event_file(entry.path())) files.push_back(entry.path());
  }
  for (const auto& file : files) {
    const auto records = read_records(file.string(), /*allow_truncated_tail=*/true);
    std::string kept;
    int64_t dropped = 0;
    for (const auto& payload : records) {
      tb::Event e;
      if (e.ParseFromString(payload) && e.step() > step) {
        ++dropped;
        continue;
      }
      kept += frame_record(payload);
    }
    // A truncated tail (a writer killed mid-record) goes too: a file is rewritten
    // whenever what it keeps differs from what it holds.
    if (dropped == 0 && kept.size() == fs::file_size(file)) continue;
    core::write_file_atomic(file.string(), kept, "TensorBoard event file");
    removed += dropped;
  }
  return removed;
}

EventWriter::EventWriter(const std::string& dir, std::optional<int64_t> resume_step) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  STRATA_CHECK_AS(IoError, fs::is_directory(dir), "cannot create the TensorBoard folder '{}': {}", dir, ec.message());
  if (resume_step) trim_events_after(dir, *resume_step);
  // Seconds and pid in the name: every writer (every start or resume) gets its own file,
  // and TensorBoard reads them in name order.
  // A counter too: two writers of one process within a second get two files.
  static std::atomic<int> writers{0};
  path_ = (fs::path(dir) / fmt::format("events.out.tfevents.{:010d}.{}.{}.{}.strata",
                                       static_cast<int64_t>(now_seconds()), hostname(), ::getpid(), writers++))
              .string();
  out_.open(path_, std::ios::binary | std::ios::trunc);
  STRATA_CHECK_AS(IoError, out_.good(), "cannot create the TensorBoard event file '{}'", path_);
  tb::Event version;
  version.set_wall_time(now_seconds());
  version.set_file_version("brain.Event:2");
  write_event(version.SerializeAsString());
  if (resume_step) {
    tb::Event start;
    start.set_wall_time(now_seconds());
    start.set_step(*resume_step);
    start.mutable_session_log()->set_status(tb::SessionLog::START);
    write_event(start.SerializeAsString());
  }
  flush();
}

EventWriter::~EventWriter() {
  try {
    flush();
  } catch (const std::exception& e) {
    core::warn("{}", e.what());  // destructors log instead of throwing
  }
}

void EventWriter::write_event(const std::string& serialized) { out_ << frame_record(serialized); }

void EventWriter::scalar(const std::string& tag, int64_t step, double value) {
  tb::Event e;
  e.set_wall_time(now_seconds());
  e.set_step(step);
  auto* v = e.mutable_summary()->add_value();
  v->set_tag(tag);
  v->set_simple_value(static_cast<float>(value));
  write_event(e.SerializeAsString());
}

void EventWriter::image(const std::string& tag, int64_t step, const std::string& png, int width, int height,
                        int channels) {
  tb::Event e;
  e.set_wall_time(now_seconds());
  e.set_step(step);
  auto* v = e.mutable_summary()->add_value();
  v->set_tag(tag);
  auto* img = v->mutable_image();
  img->set_width(width);
  img->set_height(height);
  img->set_colorspace(channels);
  img->set_encoded_image_string(png);
  write_event(e.SerializeAsString());
}

void EventWriter::flush() {
  out_.flush();
  STRATA_CHECK_AS(IoError, out_.good(), "cannot write to the TensorBoard event file '{}'", path_);
}

}  // namespace strata::viz
