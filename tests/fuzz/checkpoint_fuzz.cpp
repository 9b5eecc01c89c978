// libFuzzer harness: a checkpoint or PyTorch state_dict as evaluate, predict, export and
// finetune meet it (model::load_unet). The input is written as a .pt and loaded on the
// CPU; a state_dict is loaded into the U-Net of tests/fuzz/make_seeds.sh (widths 4,8).
// load_unet tells the two formats apart itself (is_state_dict), so one harness covers
// both: the zip container, the metadata, the model section's YAML and every tensor.
#include "fuzz_input.h"

#include "strata/model/model_loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  static const nn::UNetConfig kArchitecture = [] {
    nn::UNetConfig c;
    c.widths = {4, 8};
    return c;
  }();
  fuzz::InputFile input(data, size, ".pt");
  fuzz::expect_clean_refusal([&] { model::load_unet(input.path(), torch::kCPU, &kArchitecture); });
  return 0;
}
