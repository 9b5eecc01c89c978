// Parameter counts, memory format conversion and the layer table (see summary.h).
#include "strata/nn/summary.h"

#include "strata/core/log.h"

#include <torch/torch.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

namespace strata::nn {

int64_t count_parameters(const torch::nn::Module& module, bool trainable_only) {
  int64_t n = 0;
  for (const auto& p : module.parameters(/*recurse=*/true)) {
    if (!trainable_only || p.requires_grad()) n += p.numel();
  }
  return n;
}

void log_parameter_count(const torch::nn::Module& module, std::string_view what) {
  int64_t n = count_parameters(module);
  core::log0("{}: {} trainable parameters ({:.1f} MiB as float32)", what, group_digits(n),
             static_cast<double>(n) * 4 / (1 << 20));
}

void set_memory_format(torch::nn::Module& module, c10::MemoryFormat format) {
  torch::NoGradGuard no_grad;
  // ChannelsLast applies to 4-D tensors, ChannelsLast3d to 5-D ones.
  const int64_t dim = format == c10::MemoryFormat::ChannelsLast3d ? 5 : 4;
  auto convert = [format, dim](torch::Tensor& t) {
    if (t.defined() && t.dim() == dim) t.set_data(t.contiguous(format));
  };
  for (auto& p : module.parameters(/*recurse=*/true)) convert(p);
  for (auto& b : module.buffers(/*recurse=*/true)) convert(b);
}

void Model::set_memory_format(c10::MemoryFormat format) { nn::set_memory_format(*this, format); }

std::string group_digits(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

namespace {

// 6850000000 -> "6.85 G".
std::string si(double v) {
  const char* units[] = {"", " k", " M", " G", " T"};
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  return fmt::format("{:.3g}{}", v, units[u]);
}

}  // namespace

std::string format_summary(const std::vector<LayerRecord>& records, const std::vector<int64_t>& input_shape,
                           int64_t total_params) {
  std::vector<std::string> left, shapes;
  size_t left_width = std::string("layer (type)").size(), shape_width = std::string("output shape").size();
  int64_t mult_adds = 0, batch = input_shape.empty() ? 1 : std::max<int64_t>(1, input_shape[0]);
  for (const auto& r : records) {
    left.push_back(fmt::format("{:{}}{} ({})", "", 2 * r.depth, r.name, r.type));
    shapes.push_back(fmt::format("[{}]", fmt::join(r.output_shape, ", ")));
    left_width = std::max(left_width, left.back().size());
    shape_width = std::max(shape_width, shapes.back().size());
    if (r.depth == 0) mult_adds += r.mult_adds;
  }
  std::string out;
  const std::string rule(left_width + shape_width + 16, '-');
  out += fmt::format("{:<{}}  {:<{}}  {:>12}\n{}\n", "layer (type)", left_width, "output shape", shape_width, "params",
                     rule);
  for (size_t i = 0; i < records.size(); ++i) {
    std::string params = records[i].params > 0 ? group_digits(records[i].params) : "-";
    out += fmt::format("{:<{}}  {:<{}}  {:>12}\n", left[i], left_width, shapes[i], shape_width, params);
  }
  out += rule + "\n";
  out += fmt::format("input: [{}] (float32)\n", fmt::join(input_shape, ", "));
  out += fmt::format("trainable parameters: {} ({:.1f} MiB as float32)\n", group_digits(total_params),
                     static_cast<double>(total_params) * 4 / (1 << 20));
  double per_sample = static_cast<double>(mult_adds) / batch;
  out +=
      fmt::format("convolution multiply-adds per sample, forward: {} ({}FLOP)\n", si(per_sample), si(2 * per_sample));
  out += fmt::format("parameters: {}\n", total_params);
  return out;
}

}  // namespace strata::nn
