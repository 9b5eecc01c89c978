// AmpMode and autocast scopes (precision.h).
#include "strata/nn/precision.h"

#include "strata/core/error.h"
#include "strata/core/log.h"

#include <ATen/autocast_mode.h>

namespace strata::nn {

AmpMode parse_amp(const std::string& name) {
  if (name == "off") return AmpMode::kOff;
  if (name == "fp16") return AmpMode::kFp16;
  if (name == "bf16") return AmpMode::kBf16;
  STRATA_THROW(ConfigError, "train.amp must be off, fp16 or bf16, got '{}'", name);
}

const char* amp_name(AmpMode mode) {
  switch (mode) {
    case AmpMode::kOff: return "off";
    case AmpMode::kFp16: return "fp16";
    case AmpMode::kBf16: return "bf16";
  }
  return "?";
}

AmpMode resolve_amp(AmpMode requested, const torch::Device& device) {
  if (requested == AmpMode::kFp16 && device.is_cpu()) {
    core::warn0("train.amp: fp16 needs a GPU; running in fp32 (amp off) on the CPU. bf16 runs on CPUs");
    return AmpMode::kOff;
  }
  return requested;
}

AutocastScope::AutocastScope(AmpMode mode, const torch::Device& device) : type_(device.type()) {
  if (mode == AmpMode::kOff) return;
  active_ = true;
  prev_enabled_ = at::autocast::is_autocast_enabled(type_);
  prev_dtype_ = at::autocast::get_autocast_dtype(type_);
  at::autocast::set_autocast_enabled(type_, true);
  at::autocast::set_autocast_dtype(type_, mode == AmpMode::kFp16 ? at::kHalf : at::kBFloat16);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  // Leaving the outermost scope drops the cache of casted weights (as PyTorch does).
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(type_, prev_enabled_);
  at::autocast::set_autocast_dtype(type_, prev_dtype_);
}

}  // namespace strata::nn
