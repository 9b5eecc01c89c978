// The precision a model runs in: AmpMode (off, fp16, bf16) and the autocast scope that
// applies it. Training (GradScaler in train/amp.h) and evaluation both use it.
#pragma once

#include <torch/torch.h>

#include <string>

namespace strata::nn {

enum class AmpMode { kOff, kFp16, kBf16 };

// "off" | "fp16" | "bf16"; anything else is a ConfigError.
AmpMode parse_amp(const std::string& name);
const char* amp_name(AmpMode mode);
// The mode that can run on `device`: fp16 on a CPU falls back to off, with a warning
// that says so (CPU autocast has no fp16 kernels worth using).
AmpMode resolve_amp(AmpMode requested, const torch::Device& device);

// Enables autocast for `device`'s type in the mode's dtype for its lifetime (no-op for
// kOff), and restores the previous state after.
class AutocastScope {
 public:
  AutocastScope(AmpMode mode, const torch::Device& device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  c10::DeviceType type_;
  bool prev_enabled_ = false;
  c10::ScalarType prev_dtype_;
};

}  // namespace strata::nn
