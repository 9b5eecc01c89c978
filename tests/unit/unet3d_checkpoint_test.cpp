// UNet3d through model/: a checkpoint written as the Trainer writes one loads through
// load_checkpoint with registered_model_builder("unet3d") to the same weights and
// logits; a section that is no UNet3d config is a CheckpointError naming the file; a
// PyTorch state_dict export imports back exactly, and one that does not fit names the key.
#include "strata/core/config.h"
#include "strata/model/checkpoint.h"
#include "strata/model/model_loader.h"
#include "strata/model/state_dict.h"
#include "strata/nn/model_registry.h"
#include "strata/nn/unet3d.h"
#include "test_util.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace strata::model {
namespace {

using strata::test::error_of;
using strata::test::TempDir;

nn::UNet3dConfig tiny(std::vector<int64_t> widths = {4, 8}) {
  nn::UNet3dConfig c;
  c.widths = std::move(widths);
  c.norm = "batch";
  return c;
}

void save(const nn::Model& model, const std::string& model_yaml, const std::string& path) {
  CheckpointMeta meta;
  meta.model_yaml = model_yaml;
  meta.reason = "best";
  torch::serialize::OutputArchive archive, weights;
  write_meta(archive, meta);
  model.save(weights);
  archive.write("model", weights);
  save_atomic(archive, path);
}

TEST(UNet3dCheckpoint, LoadsThroughTheRegisteredBuilderToTheSameLogits) {
  TempDir dir("unet3d_ckpt");
  const std::string path = (dir.path / "best.pt").string();
  torch::manual_seed(6);
  nn::UNet3d saved(tiny());
  for (auto& b : saved->named_buffers()) {
    if (b.key().find("running_var") != std::string::npos) b.value().uniform_(0.5, 2.0);
  }
  save(*saved, core::to_yaml(tiny()), path);
  LoadedCheckpoint loaded = load_checkpoint(path, registered_model_builder(nn::kUNet3d, path));
  EXPECT_EQ(loaded.meta.reason, "best");
  saved->eval();
  loaded.model->eval();
  torch::Tensor x = torch::randn({1, 4, 4, 6, 2});
  EXPECT_TRUE(torch::equal(loaded.model->forward(x), saved->forward(x)));

  save(*saved, "widths: [4, 8]\nnorm: layer\n", path);
  EXPECT_NE(error_of([&] { load_checkpoint(path, registered_model_builder(nn::kUNet3d, path)); })
                .find("'" + path + "' stores a model section that is not a valid unet3d config"),
            std::string::npos);
}

TEST(UNet3dCheckpoint, StateDictExportImportsBackAndMisfitsAreNamed) {
  TempDir dir("unet3d_sd");
  const std::string path = (dir.path / "model.pt").string();
  torch::manual_seed(8);
  nn::UNet3d exported(tiny());
  export_state_dict(*exported, path);
  EXPECT_TRUE(is_state_dict(path));
  torch::manual_seed(9);
  nn::UNet3d imported(tiny());
  import_state_dict(*imported, path);
  auto want = exported->named_parameters();
  for (const auto& p : imported->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), want[p.key()])) << p.key();
  nn::UNet3d wider(tiny({8, 8}));
  EXPECT_NE(error_of([&] { import_state_dict(*wider, path); })
                .find("'enc.0.conv1.weight' (PyTorch name 'enc.0.0.weight') has shape [4, 4, 3, 3, 3] where"),
            std::string::npos);
}

}  // namespace
}  // namespace strata::model
