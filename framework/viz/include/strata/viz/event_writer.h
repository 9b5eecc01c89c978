// TensorBoard event files: <dir>/events.out.tfevents.<seconds>.<host>.<pid>.<n>.strata,
// one per writer, records framed as TensorBoard (and TensorFlow's TFRecord) frame them:
//   uint64 length (little-endian), uint32 masked CRC32C of the length bytes,
//   the serialized Event, uint32 masked CRC32C of it.
// Events are encoded with libprotobuf from proto/tb_event.proto. A new file starts with
// the "brain.Event:2" version record.
//
// Resuming: TensorBoard reads every file of the folder as one run. A writer opened with
// a resume step first removes, from the folder's earlier files, the records of steps
// after it (the part of a run that its checkpoint does not hold; each file rewritten
// atomically), so that the step axis of the run stays monotonic, and logs a
// SessionLog START there.
//
// Not thread-safe; one writer per folder (rank 0 of a run).
#pragma once

#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::viz {

// TensorBoard's checksum: CRC32C (Castagnoli), rotated right by 15 and offset by
// 0xa282ead8.
uint32_t crc32c(std::string_view data);
uint32_t masked_crc32c(std::string_view data);

// One framed record around `payload`.
std::string frame_record(std::string_view payload);

// The payloads of an event file, every checksum checked. A truncated last record (a
// writer killed mid-record) ends the list when `allow_truncated_tail`, and is a
// DataError otherwise; a checksum mismatch is a DataError naming the file and offset.
std::vector<std::string> read_records(const std::string& path, bool allow_truncated_tail = false);

// What read_events decodes (enough for Strata's own checks and resume trimming).
struct EventRecord {
  double wall_time = 0;
  int64_t step = 0;
  std::string kind;  // "file_version", "scalar", "image", "session_start", "other"
  std::string tag;   // scalars and images
  double value = 0;  // scalars
};
std::vector<EventRecord> read_events(const std::string& path, bool allow_truncated_tail = false);

class EventWriter {
 public:
  // Creates `dir` if needed and a new event file in it. With `resume_step`, earlier
  // files lose their records of later steps first (see above).
  explicit EventWriter(const std::string& dir, std::optional<int64_t> resume_step = std::nullopt);
  ~EventWriter();
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  void scalar(const std::string& tag, int64_t step, double value);
  // An image summary: `png` holds an encoded PNG of width x height with `channels`
  // (3 RGB, 4 RGBA).
  void image(const std::string& tag, int64_t step, const std::string& png, int width, int height, int channels = 4);
  // Makes everything written so far durable in the file (flushes; errors throw IoError).
  void flush();

  const std::string& path() const { return path_; }

 private:
  void write_event(const std::string& serialized);

  std::string path_;
  std::ofstream out_;
};

// Removes the records of steps after `step` from every events.out.tfevents.* file of
// `dir` (rewriting only the files that have such records, atomically); returns how
// many records were removed.
int64_t trim_events_after(const std::string& dir, int64_t step);

}  // namespace strata::viz
