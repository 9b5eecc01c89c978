// Atomic checkpoint I/O and metadata (see checkpoint.h).
#include "strata/model/checkpoint.h"

#include "strata/core/build_info.h"
#include "strata/core/error.h"
#include "strata/core/files.h"
#include "strata/core/log.h"

#include <zip.h>
#include <zlib.h>

#include <functional>
#include <memory>
#include <typeinfo>
#include <unordered_set>
#include <vector>

namespace strata::model {
namespace {

void write_string(torch::serialize::OutputArchive& a, const std::string& key, const std::string& value) {
  a.write(key, c10::IValue(value));
}

std::string read_string(torch::serialize::InputArchive& a, const std::string& key, const std::string& path) {
  c10::IValue v;
  if (!a.try_read(key, v) || !v.isString()) {
    STRATA_THROW(CheckpointError, "'{}' is not a Strata checkpoint: it has no '{}'", path, key);
  }
  return v.toStringRef();
}

int64_t read_int(torch::serialize::InputArchive& a, const std::string& key, const std::string& path) {
  c10::IValue v;
  if (!a.try_read(key, v) || !v.isInt()) {
    STRATA_THROW(CheckpointError, "'{}' is not a Strata checkpoint: it has no '{}'", path, key);
  }
  return v.toInt();
}


constexpr const char* kChecksums = "meta.checksums";

// CRC32 of `bytes`, continued from `crc`.
uint32_t crc32_of(uint32_t crc, const void* bytes, size_t n) {
  return static_cast<uint32_t>(::crc32_z(crc, static_cast<const Bytef*>(bytes), n));
}

// The checksum of one value of an archive: a tensor's dtype, shape and bytes (in
// logical order); a string's, integer's or float's bytes. Other values (the archive's
// own "training" flag, lists in libtorch's optimizer state) have none.
std::optional<uint32_t> checksum_of(const c10::IValue& v) {
  if (v.isTensor()) {
    const torch::Tensor t = v.toTensor().detach().to(torch::kCPU).contiguous();
    const int8_t dtype = static_cast<int8_t>(t.scalar_type());
    uint32_t crc = crc32_of(0, &dtype, sizeof(dtype));
    crc = crc32_of(crc, t.sizes().data(), t.sizes().size() * sizeof(int64_t));
    return crc32_of(crc, t.data_ptr(), static_cast<size_t>(t.numel()) * t.element_size());
  }
  if (v.isString()) return crc32_of(0, v.toStringRef().data(), v.toStringRef().size());
  if (v.isInt()) {
    const int64_t i = v.toInt();
    return crc32_of(0, &i, sizeof(i));
  }
  if (v.isDouble()) {
    const double d = v.toDouble();
    return crc32_of(0, &d, sizeof(d));
  }
  return std::nullopt;
}

using Visit = std::function<void(const std::string& name, uint32_t crc)>;

// Visits every checksummed value of `archive` and of its sub-archives, by its dotted
// path ("model.enc.0.conv1.weight", "optimizer.fused_adam.3.exp_avg", "meta.epoch").
void for_each_checksum(torch::serialize::InputArchive& archive, const std::string& prefix, const Visit& visit) {
  for (const std::string& key : archive.keys()) {
    const std::string name = prefix.empty() ? key : prefix + "." + key;
    torch::serialize::InputArchive sub;
    c10::IValue value;
    if (name == kChecksums) continue;
    if (archive.try_read(key, sub)) {
      for_each_checksum(sub, name, visit);
    } else if (archive.try_read(key, value)) {
      if (auto crc = checksum_of(value)) visit(name, *crc);
    }
  }
}

// Writes the checksums of everything `archive` holds into it. They are taken from the
// archive as serialized and read back, so that they cover exactly what a reader gets,
// whatever wrote it (Module::save, libtorch's Adam, ours).
void add_checksums(torch::serialize::OutputArchive& archive, const std::string& path) {
  std::string bytes;
  torch::serialize::InputArchive copy;
  try {
    archive.save_to([&bytes](const void* data, size_t n) {
      bytes.append(static_cast<const char*>(data), n);
      return n;
    });
    copy.load_from(bytes.data(), bytes.size(), torch::Device(torch::kCPU));
  } catch (const c10::Error& e) {
    STRATA_THROW(IoError, "cannot serialize the checkpoint '{}': {}", path, e.what_without_backtrace());
  }
  c10::Dict<std::string, int64_t> sums;
  for_each_checksum(copy, "", [&sums](const std::string& name, uint32_t crc) { sums.insert(name, crc); });
  archive.write(kChecksums, c10::IValue(sums));
}

// Format 2: every value matches its checksum and none is missing or added. Format 1
// has none to check (said once in the log); a file without a format is left to
// read_meta, which names what it lacks.
void verify_checksums(torch::serialize::InputArchive& archive, const std::string& path) {
  c10::IValue format, table;
  if (!archive.try_read("meta.format", format) || !format.isInt()) return;
  if (format.toInt() == 1) {
    core::log0("{} is a format-1 checkpoint, written before Strata stored checksums: its values are not verified",
               path);
    return;
  }
  STRATA_CHECK_AS(CheckpointError, archive.try_read(kChecksums, table) && table.isGenericDict(),
                  "checkpoint '{}' (format {}) has no '{}'", path, format.toInt(), kChecksums);
  const c10::impl::GenericDict sums = table.toGenericDict();
  std::unordered_set<std::string> seen;
  for_each_checksum(archive, "", [&](const std::string& name, uint32_t crc) {
    auto it = sums.find(name);
    STRATA_CHECK_AS(CheckpointError, it != sums.end(), "checkpoint '{}' holds '{}', which has no checksum", path,
                    name);
    STRATA_CHECK_AS(CheckpointError, it->value().toInt() == crc,
                    "checkpoint '{}' is corrupt: '{}' does not match its checksum (CRC32 {:08x}, stored {:08x})", path,
                    name, crc, it->value().toInt());
    seen.insert(name);
  });
  for (const auto& entry : sums) {
    STRATA_CHECK_AS(CheckpointError, seen.count(entry.key().toStringRef()) > 0,
                    "checkpoint '{}' lacks '{}', which its checksums list", path, entry.key().toStringRef());
  }
}

CheckpointMeta read_meta_fields(torch::serialize::InputArchive& a, const std::string& path) {
  CheckpointMeta m;
  m.format = read_int(a, "meta.format", path);
  STRATA_CHECK_AS(CheckpointError, m.format >= 1 && m.format <= kCheckpointFormat,
                  "'{}' has checkpoint format {}, this Strata reads formats 1 to {}", path, m.format,
                  kCheckpointFormat);
  m.strata_version = read_string(a, "meta.strata_version", path);
  m.config_yaml = read_string(a, "meta.config", path);
  m.model_yaml = read_string(a, "meta.model", path);
  m.epoch = read_int(a, "meta.epoch", path);
  m.step = read_int(a, "meta.step", path);
  m.step_in_epoch = read_int(a, "meta.step_in_epoch", path);
  // Absent from checkpoints written before resuming at another world size existed.
  for (auto [key, field] : {std::pair{"meta.epoch_sample", &m.epoch_sample}, std::pair{"meta.world_size", &m.world_size},
                            std::pair{"meta.batch_size", &m.batch_size}, std::pair{"meta.slice_size", &m.slice_size}}) {
    c10::IValue v;
    if (a.try_read(key, v) && v.isInt()) *field = v.toInt();
  }
  c10::IValue name;
  if (a.try_read("meta.model_name", name) && name.isString()) m.model_name = name.toStringRef();
  c10::IValue best;
  if (a.try_read("meta.best_metric", best) && best.isDouble()) m.best_metric = best.toDouble();
  m.reason = read_string(a, "meta.reason", path);
  return m;
}


}  // namespace

void write_meta(torch::serialize::OutputArchive& a, const CheckpointMeta& m) {
  a.write("meta.format", c10::IValue(m.format));
  write_string(a, "meta.strata_version", STRATA_VERSION);
  write_string(a, "meta.config", m.config_yaml);
  write_string(a, "meta.model", m.model_yaml);
  if (!m.model_name.empty()) write_string(a, "meta.model_name", m.model_name);
  a.write("meta.epoch", c10::IValue(m.epoch));
  a.write("meta.step", c10::IValue(m.step));
  a.write("meta.step_in_epoch", c10::IValue(m.step_in_epoch));
  a.write("meta.epoch_sample", c10::IValue(m.epoch_sample));
  a.write("meta.world_size", c10::IValue(m.world_size));
  a.write("meta.batch_size", c10::IValue(m.batch_size));
  a.write("meta.slice_size", c10::IValue(m.slice_size));
  a.write("meta.best_metric", c10::IValue(m.best_metric));
  write_string(a, "meta.reason", m.reason);
}

CheckpointMeta read_meta(torch::serialize::InputArchive& a, const std::string& path) {
  return read_checkpoint_part(path, "the metadata", [&] { return read_meta_fields(a, path); });
}

void save_atomic(torch::serialize::OutputArchive& archive, const std::string& path) {
  add_checksums(archive, path);
  core::AtomicFile file(path, "checkpoint");
  try {
    // Through the writer function, not save_to(filename): libtorch's own file writer
    // aborts the process on a full disk (its destructor throws), ours keeps the error.
    archive.save_to([&file](const void* data, size_t n) { return file.write(data, n); });
  } catch (const c10::Error& e) {
    STRATA_THROW(IoError, "cannot write the checkpoint '{}': {}", path, e.what_without_backtrace());
  }
  file.commit();
}

namespace {

using Zip = std::unique_ptr<zip_t, decltype(&zip_discard)>;

[[noreturn]] void throw_corrupt_zip(const std::string& path, std::string_view what, const std::string& why) {
  STRATA_THROW(CheckpointError, "{} '{}' is corrupt or not a libtorch archive: {}", what, path, why);
}

// The archive through libzip, its central directory held to the local headers
// (ZIP_CHECKCONS).
Zip open_zip(const std::string& path, std::string_view what) {
  int code = 0;
  Zip zip(zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code), &zip_discard);
  if (!zip) {
    zip_error_t error;
    zip_error_init_with_code(&error, code);
    const std::string why = zip_error_strerror(&error);
    zip_error_fini(&error);
    throw_corrupt_zip(path, what, why);
  }
  return zip;
}

std::string record_name(zip_t* zip, zip_int64_t i) {
  const char* name = zip_get_name(zip, static_cast<zip_uint64_t>(i), 0);
  return name ? name : "?";
}

}  // namespace

// libtorch reads an archive's records without comparing them with the zip's CRC-32s,
// and it unpickles tensor sizes and memo indices before Strata's own checksums can be
// compared: one byte changed makes it allocate gigabytes. So every record is first read
// through libzip, which compares it with its CRC-32, in 1 MiB pieces.
void verify_zip_records(const std::string& path, std::string_view what) {
  Zip zip = open_zip(path, what);
  std::vector<char> buffer(size_t{1} << 20);
  const zip_int64_t entries = zip_get_num_entries(zip.get(), 0);
  for (zip_int64_t i = 0; i < entries; ++i) {
    std::unique_ptr<zip_file_t, decltype(&zip_fclose)> file(zip_fopen_index(zip.get(), static_cast<zip_uint64_t>(i), 0),
                                                           &zip_fclose);
    if (!file) throw_corrupt_zip(path, what, fmt::format("record '{}': {}", record_name(zip.get(), i), zip_strerror(zip.get())));
    zip_int64_t n = 0;
    while ((n = zip_fread(file.get(), buffer.data(), buffer.size())) > 0) {
    }
    if (n < 0) {
      throw_corrupt_zip(path, what, fmt::format("record '{}': {}", record_name(zip.get(), i), zip_file_strerror(file.get())));
    }
  }
}

std::vector<std::string> zip_record_names(const std::string& path, std::string_view what) {
  Zip zip = open_zip(path, what);
  std::vector<std::string> names;
  const zip_int64_t entries = zip_get_num_entries(zip.get(), 0);
  for (zip_int64_t i = 0; i < entries; ++i) names.push_back(record_name(zip.get(), i));
  return names;
}

torch::serialize::InputArchive open_checkpoint(const std::string& path, std::optional<torch::Device> device) {
  core::require_file<core::CheckpointError>(path, "checkpoint");
  verify_zip_records(path, "checkpoint");
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path, device);
  } catch (const std::exception& e) {  // also a parse error in the archive's code, a failed lookup in its pickle
    STRATA_THROW(CheckpointError, "checkpoint '{}' is corrupt or not a libtorch archive: {}", path, reason_of(e));
  }
  read_checkpoint_part(path, "the checksums", [&] { verify_checksums(archive, path); });
  return archive;
}

std::string reason_of(const std::exception& e) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
  const std::string what = c10_error ? c10_error->what_without_backtrace() : e.what();
  // Some of libtorch's failures on a damaged archive carry no message: name their type.
  return what.empty() ? c10::demangle(typeid(e).name()) : what;
}

void throw_unreadable(const std::string& path, std::string_view part, const std::string& why) {
  STRATA_THROW(CheckpointError, "cannot read {} of checkpoint '{}' (corrupt or from another program): {}", part, path,
               why);
}

}  // namespace strata::model
