// `brats_recipe export`: a checkpoint's weights as a PyTorch state_dict (model/state_dict.h).
//
//   build/bin/brats_recipe export --checkpoint runs/demo/finetune/best.pt --out model.pt
//   python3 -c "import torch; sd = torch.load('model.pt'); print(len(sd))"
#include "brats_recipe/cli.h"
#include "brats_recipe/setup.h"
#include "strata/core/log.h"
#include "strata/model/model_loader.h"
#include "strata/model/state_dict.h"
#include "strata/nn/model_registry.h"
#include "strata/nn/unet3d.h"

namespace strata::recipes {

void add_export_command(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand(
      "export", "a checkpoint's weights as a PyTorch state_dict (torch.load; keys of benchmarks/pytorch_reference.py)");
  auto checkpoint = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  cmd->add_option("--checkpoint", *checkpoint, "the checkpoint (last.pt, best.pt)")->required();
  cmd->add_option("--out", *out, "the state_dict file to write (atomically)")->required();
  cli.on(cmd, [&cli, checkpoint, out] {
    if (cli.world().rank() != 0) return;  // one file; more ranks add nothing
    if (checkpoint_model_name(*checkpoint) == nn::kUNet3d) {
      model::LoadedCheckpoint net =
          model::load_checkpoint(*checkpoint, model::registered_model_builder(nn::kUNet3d, *checkpoint));
      model::export_state_dict(*net.model, *out);
      const nn::UNet3dConfig c =
          ModelConfig::from_section(nn::kUNet3d, net.meta.model_yaml, "the model section of " + *checkpoint).unet3d();
      core::log0("wrote {}: {} tensors of {} (epoch {}); in Python: UNet3d(in_channels={}, classes={}, widths={}, "
                 "norm='{}').load_state_dict(torch.load('{}'), strict=True) with benchmarks/pytorch_reference.py's "
                 "UNet3d", *out, net.model->named_parameters().size() + net.model->named_buffers().size(),
                 net.model->describe(), net.meta.epoch, c.in_channels, c.num_classes,
                 fmt::format("({})", fmt::join(c.widths, ", ")), c.norm, *out);
      return;
    }
    model::LoadedModel loaded = model::load_unet(*checkpoint, torch::Device(torch::kCPU));
    model::export_state_dict(*loaded.model, *out);
    const auto& c = loaded.model->config();
    core::log0("wrote {}: {} tensors of {} (epoch {}); in Python: UNet2d(in_channels={}, classes={}, widths={})"
               ".load_state_dict(torch.load('{}'), strict=True) with benchmarks/pytorch_reference.py's UNet2d",
               *out, loaded.model->named_parameters().size() + loaded.model->named_buffers().size(),
               loaded.model->describe(), loaded.meta.epoch, c.in_channels, c.num_classes,
               fmt::format("({})", fmt::join(c.widths, ", ")), *out);
  }, Cli::Gpu::kNever);
}

}  // namespace strata::recipes
