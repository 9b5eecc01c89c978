// Layer records of a U-Net's forward pass (see layer_tracer.h).
#include "layer_tracer.h"

#include "strata/nn/batch_norm_relu.h"

namespace strata::nn {

std::string short_type(const torch::nn::Module& module) {
  std::string name = module.name();
  size_t colon = name.rfind("::");
  if (colon != std::string::npos) name = name.substr(colon + 2);
  if (name.size() > 4 && name.compare(name.size() - 4, 4, "Impl") == 0) name.resize(name.size() - 4);
  return name;
}

int64_t conv_mult_adds(const torch::nn::Module& module, const torch::Tensor& in, const torch::Tensor& out) {
  const std::string type = short_type(module);
  if (type.rfind("Conv", 0) != 0) return 0;
  // Weights are [out, in / groups, k...] (convolution) or [in, out / groups, k...]
  // (transposed): each output (input) element costs weight.numel() / weight.size(0).
  const torch::Tensor weight = module.named_parameters(/*recurse=*/false)["weight"];
  const int64_t per_element = weight.numel() / weight.size(0);
  const bool transposed = type.rfind("ConvTranspose", 0) == 0;
  return (transposed ? in.numel() : out.numel()) * per_element;
}

size_t LayerTracer::open(std::string name, std::string type, int depth, const torch::nn::Module* module) {
  LayerRecord r;
  r.name = std::move(name);
  r.type = std::move(type);
  r.depth = depth;
  r.params = module ? count_parameters(*module) : 0;
  records_.push_back(std::move(r));
  return records_.size() - 1;
}

void LayerTracer::close(size_t index, const torch::Tensor& out, int64_t mult_adds) {
  records_[index].output_shape = out.sizes().vec();
  records_[index].mult_adds = mult_adds;
}

void LayerTracer::add(std::string name, std::string type, const torch::nn::Module* module, const torch::Tensor& in,
                      const torch::Tensor& out) {
  size_t i = open(std::move(name), std::move(type), 0, module);
  close(i, out, module ? conv_mult_adds(*module, in, out) : 0);
}

torch::Tensor LayerTracer::run_block(torch::nn::Sequential& block, const std::string& name, torch::Tensor x,
                                     LayerTracer* tracer) {
  if (!tracer) return forward_conv_block(block, std::move(x));
  size_t row = tracer->open(name, "ConvBlock", 0, block.get());
  int64_t mult_adds = 0;
  auto children = block->named_children();
  size_t k = 0;
  for (torch::nn::AnyModule& any : *block) {
    const torch::nn::Module& layer = *any.ptr();
    torch::Tensor in = x;
    x = any.forward(x);
    int64_t layer_mult_adds = conv_mult_adds(layer, in, x);
    mult_adds += layer_mult_adds;
    size_t child = tracer->open(name + "." + children[k++].key(), short_type(layer), 1, &layer);
    tracer->close(child, x, layer_mult_adds);
  }
  tracer->close(row, x, mult_adds);
  return x;
}

}  // namespace strata::nn
