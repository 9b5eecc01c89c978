// Reads tests/golden/unet_golden.pt (written by make_unet_golden.py with torch.save) and
// sets up the model and loss it was made with, for the CPU and GPU golden tests.
// Header-only test helper; the file's folder comes from the environment variable
// STRATA_GOLDEN_DIR, which ctest sets (a runtime setting rather than a compile definition,
// so that the objects do not depend on the clone's path and ccache shares them).
#pragma once

#include "strata/nn/loss.h"
#include "strata/nn/unet.h"

#include <gtest/gtest.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace strata::test {

class GoldenFile {
 public:
  GoldenFile() {
    const char* dir = std::getenv("STRATA_GOLDEN_DIR");
    if (dir == nullptr) throw std::runtime_error("STRATA_GOLDEN_DIR is not set: it names the folder of unet_golden.pt");
    const std::string path = std::string(dir) + "/unet_golden.pt";
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (const auto& kv : torch::pickle_load(bytes).toGenericDict()) {
      entries_.emplace(kv.key().toStringRef(), kv.value());
    }
  }
  torch::Tensor tensor(const std::string& key) const {
    auto it = entries_.find(key);
    if (it == entries_.end()) throw std::runtime_error("unet_golden.pt has no entry " + key);
    return it->second.toTensor();
  }
  std::vector<std::string> strings(const std::string& key) const {
    std::vector<std::string> out;
    for (const auto& v : entries_.at(key).toList()) out.push_back(v.get().toStringRef());
    return out;
  }
  std::vector<std::string> keys_with_prefix(const std::string& prefix) const {
    std::vector<std::string> out;
    for (const auto& kv : entries_) {
      if (kv.first.rfind(prefix, 0) == 0) out.push_back(kv.first);
    }
    return out;
  }

  // The model of the file (widths 4, 8, 16) with its weights, loaded by name: every
  // parameter of the module must be in the file and every `param.` entry used.
  nn::UNet2d model() const {
    nn::UNetConfig config;
    config.widths = {4, 8, 16};
    nn::UNet2d model(config);
    torch::NoGradGuard no_grad;
    auto params = model->named_parameters();
    if (params.size() != keys_with_prefix("param.").size()) throw std::runtime_error("parameter count differs");
    for (auto& p : params) {
      torch::Tensor ref = tensor("param." + p.key());
      if (p.value().sizes() != ref.sizes()) throw std::runtime_error("shape of " + p.key() + " differs");
      p.value().copy_(ref);
    }
    return model;
  }

  // The loss of the file: weighted Dice [0.1, 4, 1, 1], smooth 1e-5, + 0.5 cross-entropy.
  static std::unique_ptr<nn::Loss> loss() {
    nn::LossConfig config;
    config.type = "weighted_dice";
    config.smooth = 1e-5;
    config.ce_weight = 0.5;
    return nn::make_loss(config, 4);
  }

 private:
  std::map<std::string, c10::IValue> entries_;
};

// Largest |got - want| relative to the largest |want| (the scale of the tensor).
inline double relative_error(const torch::Tensor& got, const torch::Tensor& want) {
  torch::Tensor g = got.to(torch::kCPU, torch::kDouble), w = want.to(torch::kDouble);
  EXPECT_EQ(g.sizes(), w.sizes());
  return ((g - w).abs().max() / w.abs().max().clamp_min(1e-30)).item<double>();
}

}  // namespace strata::test
