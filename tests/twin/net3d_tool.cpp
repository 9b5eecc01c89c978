// Strata's side of tests/twin/sliding_window_twin_test.sh: UNet3d weights and
// sliding-window probabilities, for PyTorch and MONAI to compare (net3d_check.py).
//
//   strata_net3d export STATE IO WIDTHS NORM   a seeded UNet3d (norm weights, and
//       BatchNorm's running statistics, perturbed) exported with export_state_dict; IO
//       gets "input" [2, 4, 8, 8, 8] and its eval-mode "logits", a phantom "volume"
//       [1, 4, 37, 45, 29] and its SlidingWindowInferer probabilities (window 16^3,
//       overlap 0.5, 3 windows per pass): "probs" without mirroring, "probs_mirror" with;
//       and "probs_small" of the volume cut to 37x13x29 (padded to the window along H).
//   strata_net3d import STATE IO WIDTHS NORM   loads PyTorch's state_dict (net3d_check.py
//       make) and prints the largest difference of its logits on IO's "input" from IO's
//       "logits"; exits 1 above 1e-5.
#include "strata/eval/sliding_window.h"
#include "strata/model/state_dict.h"
#include "strata/nn/unet3d.h"
#include "twin_io.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include <sstream>

using namespace strata;

namespace {

nn::UNet3d build(const std::string& widths, const std::string& norm) {
  nn::UNet3dConfig c;
  c.widths.clear();
  std::stringstream in(widths);
  for (std::string w; std::getline(in, w, ',');) c.widths.push_back(std::stoll(w));
  c.norm = norm;
  c.groups = 2;
  return nn::UNet3d(c);
}

// Trained-looking norm layers: affine weights away from (1, 0), BatchNorm statistics.
void perturb_norms(nn::UNet3d& model) {
  torch::NoGradGuard no_grad;
  for (auto& p : model->named_parameters()) {
    if (p.key().find("norm") == std::string::npos) continue;
    p.value().normal_(p.key().find("weight") != std::string::npos ? 1 : 0, 0.2);
  }
  for (auto& b : model->named_buffers()) {
    if (b.key().find("running_mean") != std::string::npos) b.value().normal_(0, 0.3);
    if (b.key().find("running_var") != std::string::npos) b.value().uniform_(0.5, 2.0);
    if (b.key().find("num_batches_tracked") != std::string::npos) b.value().fill_(17);
  }
}

// Two ellipsoids of different intensities per channel under noise.
torch::Tensor phantom() {
  auto axis = [](int64_t n) { return torch::arange(n, torch::kFloat); };
  auto g = torch::meshgrid({axis(37), axis(45), axis(29)}, "ij");
  torch::Tensor a = ((g[0] - 18) / 11).square() + ((g[1] - 20) / 15).square() + ((g[2] - 14) / 9).square() < 1;
  torch::Tensor b = ((g[0] - 25) / 5).square() + ((g[1] - 30) / 6).square() + ((g[2] - 10) / 4).square() < 1;
  torch::Tensor levels_a = torch::tensor({1.0f, 0.5f, -0.5f, 2.0f}).view({4, 1, 1, 1});
  torch::Tensor levels_b = torch::tensor({-1.0f, 1.5f, 1.0f, 0.0f}).view({4, 1, 1, 1});
  torch::Tensor v = a.to(torch::kFloat) * levels_a + b.to(torch::kFloat) * levels_b;
  return (v + 0.3 * torch::randn({4, 37, 45, 29})).unsqueeze(0);
}

int export_all(nn::UNet3d& model, const std::string& state, const std::string& io) {
  perturb_norms(model);
  model::export_state_dict(*model, state);
  model->eval();
  eval::SegmentationModel forward = [&model](const torch::Tensor& x) { return model->forward(x); };
  c10::impl::GenericDict d(c10::StringType::get(), c10::TensorType::get());
  torch::Tensor x = torch::randn({2, 4, 8, 8, 8}), volume = phantom();
  d.insert("input", x);
  d.insert("logits", model->forward(x));
  d.insert("volume", volume);
  for (bool mirror : {false, true}) {
    eval::SlidingWindowInferer inferer({{16, 16, 16}, 0.5, 3, mirror, 0.125});
    d.insert(mirror ? "probs_mirror" : "probs", inferer.probabilities(forward, volume));
  }
  eval::SlidingWindowInferer inferer({{16, 16, 16}, 0.5, 3, false, 0.125});
  d.insert("probs_small", inferer.probabilities(forward, volume.narrow(3, 0, 13)));
  twin::write_dict(d, io);
  fmt::print("export: {} of {}\n", state, model->describe());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    fmt::print(stderr, "usage: {} import|export STATE_DICT IO WIDTHS NORM\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1], state = argv[2], io = argv[3];
  torch::manual_seed(7);
  nn::UNet3d model = build(argv[4], argv[5]);
  torch::NoGradGuard no_grad;
  if (mode == "export") return export_all(model, state, io);
  model::import_state_dict(*model, state);
  model->eval();
  auto d = twin::read_dict(io);
  const double diff = (model->forward(d.at("input").toTensor()) - d.at("logits").toTensor()).abs().max().item<double>();
  fmt::print("import: {} into {}: max |logits - PyTorch's| = {:.3g}\n", state, model->describe(), diff);
  return diff <= 1e-5 ? 0 : 1;
}
