// A checkpoint's model, built from its stored model section (see model_loader.h).
#include "strata/model/model_loader.h"

#include "strata/model/state_dict.h"
#include "strata/nn/finite.h"
#include "strata/nn/model_registry.h"

#include "strata/core/config.h"
#include "strata/core/error.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <vector>

namespace strata::model {
namespace {

// Name and shape of every parameter, then every buffer, in registration order.
std::vector<std::pair<std::string, std::vector<int64_t>>> shapes_of(torch::nn::Module& m) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  for (const auto& p : m.named_parameters()) out.emplace_back(p.key(), p.value().sizes().vec());
  for (const auto& b : m.named_buffers()) out.emplace_back(b.key(), b.value().sizes().vec());
  return out;
}

// Weights that went NaN or Inf (training diverged before they were saved) would give
// NaN probabilities, hence empty segmentations and meaningless scores.
void refuse_non_finite(const torch::nn::Module& model, const std::string& path) {
  if (auto bad = nn::first_non_finite(model)) {
    STRATA_THROW(CheckpointError, "'{}' holds non-finite weights: {} (training diverged before it was saved; use an "
                 "earlier checkpoint)", path, bad->describe());
  }
}

}  // namespace

nn::UNetConfig stored_unet_config(const model::CheckpointMeta& meta, const std::string& path) {
  STRATA_CHECK_AS(CheckpointError, meta.model_name.empty() || meta.model_name == nn::kUNet2d,
                  "'{}' holds a {} model; this command takes unet2d models (slices, 2.5D) only. A unet3d run is "
                  "scored by its sliding-window validation (metrics.jsonl)",
                  path, meta.model_name);
  try {
    nn::UNetConfig config = core::parse_config<nn::UNetConfig>(meta.model_yaml, {}, "model section of " + path);
    config.validate();
    return config;
  } catch (const core::ConfigError& e) {
    STRATA_THROW(CheckpointError, "'{}' stores a model section that is not a valid U-Net config: {}", path, e.what());
  }
}

ModelBuilder registered_model_builder(const std::string& name, const std::string& path) {
  return [name, path](const CheckpointMeta& meta) {
    try {
      return nn::make_model(name, meta.model_yaml);
    } catch (const core::ConfigError& e) {
      STRATA_THROW(CheckpointError, "'{}' stores a model section that is not a valid {} config: {}", path, name,
                   e.what());
    }
  };
}

LoadedModel load_unet(const std::string& path, const torch::Device& device, const nn::UNetConfig* architecture) {
  if (is_state_dict(path)) {
    STRATA_CHECK_AS(CheckpointError, architecture != nullptr,
                    "'{}' is a PyTorch state_dict, which holds no architecture: give it with --config/--set model.*",
                    path);
    LoadedModel out;
    architecture->validate();
    out.model = nn::UNet2d(*architecture);
    import_state_dict(*out.model, path);
    refuse_non_finite(*out.model, path);
    out.meta.model_yaml = core::to_yaml(*architecture);
    out.meta.reason = "state_dict";
    out.model->to(device);
    if (architecture->channels_last) out.model->set_memory_format(torch::MemoryFormat::ChannelsLast);
    out.model->eval();
    return out;
  }
  nn::UNetConfig config;
  LoadedCheckpoint loaded = load_checkpoint(path, [&](const CheckpointMeta& meta) {
    config = stored_unet_config(meta, path);
    return nn::UNet2d(config).ptr();
  });
  LoadedModel out;
  out.model = nn::UNet2d(std::dynamic_pointer_cast<nn::UNet2dImpl>(loaded.model));
  out.meta = std::move(loaded.meta);
  out.model->to(device);
  if (config.channels_last) out.model->set_memory_format(torch::MemoryFormat::ChannelsLast);
  out.model->eval();
  return out;
}

LoadedCheckpoint load_checkpoint(const std::string& path, const ModelBuilder& build) {
  auto archive = model::open_checkpoint(path, torch::Device(torch::kCPU));
  LoadedCheckpoint out;
  out.meta = model::read_meta(archive, path);
  out.model = build(out.meta);
  const auto expected = shapes_of(*out.model);

  torch::serialize::InputArchive weights;
  const bool has_weights =
      read_checkpoint_part(path, "the model weights", [&] { return archive.try_read("model", weights); });
  STRATA_CHECK_AS(CheckpointError, has_weights, "'{}' has metadata but no model weights", path);
  try {
    out.model->load(weights);
  } catch (const std::exception& e) {
    STRATA_THROW(CheckpointError, "the weights of '{}' do not fit its model section ({}): {}", path,
                 out.model->describe(), reason_of(e));
  }
  // Registration order is fixed by the architecture, so both lists pair up by position.
  const auto loaded = shapes_of(*out.model);
  std::vector<size_t> wrong;
  for (size_t i = 0; i < loaded.size(); ++i) {
    if (loaded[i].second != expected[i].second) wrong.push_back(i);
  }
  if (!wrong.empty()) {
    const auto& [name, shape] = loaded[wrong.front()];
    STRATA_THROW(CheckpointError,
                 "the weights of '{}' do not fit its model section ({}): '{}' has shape {} where that architecture "
                 "needs {}{}",
                 path, out.model->describe(), name, shape, expected[wrong.front()].second,
                 wrong.size() > 1 ? fmt::format(" ({} more tensors differ)", wrong.size() - 1) : "");
  }
  refuse_non_finite(*out.model, path);
  return out;
}

std::string weights_hash(const torch::nn::Module& module) {
  std::string bytes;
  auto add = [&](const std::string& name, const torch::Tensor& t) {
    torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    bytes += name;
    for (int64_t d : c.sizes()) bytes += fmt::format(":{}", d);
    bytes.append(static_cast<const char*>(c.data_ptr()), static_cast<size_t>(c.numel() * c.element_size()));
  };
  for (const auto& p : module.named_parameters()) add(p.key(), p.value());
  for (const auto& b : module.named_buffers()) add(b.key(), b.value());
  return core::hash_hex(core::fnv1a64(bytes));
}

}  // namespace strata::model
