// Atomic checkpoint I/O and metadata (see checkpoint.h).
#include "strata/model/checkpoint.h"

#include "strata/core/build_info.h"
#include "strata/core/error.h"
#include "strata/core/files.h"


#include <filesystem>

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

}  // namespace

void write_meta(torch::serialize::OutputArchive& a, const CheckpointMeta& m) {
  a.write("meta.format", c10::IValue(m.format));
  write_string(a, "meta.strata_version", STRATA_VERSION);
  write_string(a, "meta.config", m.config_yaml);
  write_string(a, "meta.model", m.model_yaml);
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
  CheckpointMeta m;
  m.format = read_int(a, "meta.format", path);
  STRATA_CHECK_AS(CheckpointError, m.format == kCheckpointFormat,
                  "'{}' has checkpoint format {}, this Strata reads format {}", path, m.format, kCheckpointFormat);
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
  c10::IValue best;
  if (a.try_read("meta.best_metric", best) && best.isDouble()) m.best_metric = best.toDouble();
  m.reason = read_string(a, "meta.reason", path);
  return m;
}

void save_atomic(torch::serialize::OutputArchive& archive, const std::string& path) {
  namespace fs = std::filesystem;
  fs::path target(path);
  if (target.has_parent_path()) fs::create_directories(target.parent_path());
  std::string tmp = core::temporary_name(path);
  try {
    archive.save_to(tmp);
  } catch (const c10::Error& e) {
    std::error_code ignore;
    fs::remove(tmp, ignore);
    STRATA_THROW(IoError, "cannot write checkpoint '{}': {}", tmp, e.what_without_backtrace());
  }
  core::commit_file(tmp, path, "checkpoint");
}

torch::serialize::InputArchive open_checkpoint(const std::string& path, std::optional<torch::Device> device) {
  core::require_file<core::CheckpointError>(path, "checkpoint");
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path, device);
  } catch (const c10::Error& e) {
    STRATA_THROW(CheckpointError, "checkpoint '{}' is corrupt or not a libtorch archive: {}", path,
                 e.what_without_backtrace());
  }
  return archive;
}

}  // namespace strata::model
