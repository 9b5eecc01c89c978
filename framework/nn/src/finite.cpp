// NaN/Inf search over named tensors with one host synchronisation (see finite.h).
#include "strata/nn/finite.h"

#include <torch/torch.h>

#include <fmt/format.h>

namespace strata::nn {

std::string NonFinite::describe() const {
  return fmt::format("the {} '{}' holds {} non-finite value(s) ({}) of {}", buffer ? "buffer" : "parameter", name,
                     count, has_nan ? "NaN" : "Inf", numel);
}

std::optional<NonFinite> first_non_finite(const NamedTensors& tensors, size_t buffers_from) {
  std::vector<size_t> index;
  std::vector<torch::Tensor> counts;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const torch::Tensor& t = tensors[i].second;
    if (!t.defined() || !t.is_floating_point() || t.numel() == 0) continue;
    // Two counts per tensor (non-finite, NaN), all read in one transfer.
    torch::Tensor d = t.detach();
    counts.push_back(torch::stack({d.isfinite().logical_not().sum(), d.isnan().sum()}));
    index.push_back(i);
  }
  if (counts.empty()) return std::nullopt;
  torch::Tensor all = torch::stack(counts).to(torch::kCPU);
  auto a = all.accessor<int64_t, 2>();
  for (int64_t k = 0; k < a.size(0); ++k) {
    if (a[k][0] == 0) continue;
    const size_t i = index[static_cast<size_t>(k)];
    return NonFinite{tensors[i].first, i >= buffers_from, a[k][0], tensors[i].second.numel(), a[k][1] > 0};
  }
  return std::nullopt;
}

std::optional<NonFinite> first_non_finite(const torch::nn::Module& module) {
  NamedTensors named;
  for (const auto& p : module.named_parameters()) named.emplace_back(p.key(), p.value());
  const size_t buffers_from = named.size();
  for (const auto& b : module.named_buffers()) named.emplace_back(b.key(), b.value());
  return first_non_finite(named, buffers_from);
}

}  // namespace strata::nn
