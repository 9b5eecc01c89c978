// Strata's side of tests/e2e/interop_test.sh: U-Net logits through model/state_dict.h.
//
//   strata_interop import STATE_DICT IO WIDTHS   loads a PyTorch state_dict (written by
//       interop_check.py) into a U-Net of WIDTHS (e.g. 4,8,16), runs IO's "input" in eval
//       mode and prints the largest difference from IO's "logits" (PyTorch's); exits 1
//       above 1e-5.
//   strata_interop export STATE_DICT IO WIDTHS   a seeded U-Net with perturbed BatchNorm
//       weights and running statistics, exported with export_state_dict; IO gets its
//       "input" and Strata's "logits", for PyTorch to compare.
#include "strata/model/state_dict.h"
#include "strata/nn/unet.h"

#include <torch/serialize.h>

#include <fmt/format.h>

#include <fstream>
#include <sstream>

using namespace strata;

namespace {

std::vector<int64_t> parse_widths(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream in(s);
  for (std::string w; std::getline(in, w, ',');) out.push_back(std::stoll(w));
  return out;
}

nn::UNet2d build(const std::string& widths) {
  nn::UNetConfig c;
  c.widths = parse_widths(widths);
  c.validate();
  return nn::UNet2d(c);
}

c10::Dict<c10::IValue, c10::IValue> read_dict(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return torch::pickle_load(bytes).toGenericDict();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    fmt::print(stderr, "usage: {} import|export STATE_DICT IO WIDTHS\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1], state = argv[2], io = argv[3];
  nn::UNet2d model = build(argv[4]);
  torch::NoGradGuard no_grad;
  if (mode == "import") {
    model::import_state_dict(*model, state);
    model->eval();
    auto d = read_dict(io);
    torch::Tensor x = d.at("input").toTensor(), want = d.at("logits").toTensor();
    const double diff = (model->forward(x) - want).abs().max().item<double>();
    fmt::print("import: {} into {}: max |logits - PyTorch's| = {:.3g}\n", state, model->describe(), diff);
    return diff <= 1e-5 ? 0 : 1;
  }
  torch::manual_seed(7);
  model = build(argv[4]);
  for (auto& b : model->named_buffers()) {  // trained-looking BatchNorm statistics
    if (b.key().find("running_mean") != std::string::npos) b.value().normal_(0, 0.3);
    if (b.key().find("running_var") != std::string::npos) b.value().uniform_(0.5, 2.0);
    if (b.key().find("num_batches_tracked") != std::string::npos) b.value().fill_(17);
  }
  for (auto& p : model->named_parameters()) {
    if (p.key().find("norm") != std::string::npos) p.value().normal_(p.key().find("weight") != std::string::npos ? 1 : 0, 0.2);
  }
  model::export_state_dict(*model, state);
  model->eval();
  torch::Tensor x = torch::randn({2, 4, 32, 32});
  c10::impl::GenericDict d(c10::StringType::get(), c10::TensorType::get());
  d.insert("input", x);
  d.insert("logits", model->forward(x));
  const auto bytes = torch::pickle_save(c10::IValue(d));
  std::ofstream(io, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  fmt::print("export: {} of {}\n", state, model->describe());
  return 0;
}
