// Per-dtype fusion of tensor lists (see fusion.h).
#include "fusion.h"

#include <map>

namespace strata::comm::detail {

std::vector<std::vector<size_t>> group_by_dtype(const std::vector<at::Tensor>& tensors) {
  std::vector<c10::ScalarType> order;
  std::map<c10::ScalarType, std::vector<size_t>> groups;
  for (size_t i = 0; i < tensors.size(); ++i) {
    auto t = tensors[i].scalar_type();
    if (!groups.count(t)) order.push_back(t);
    groups[t].push_back(i);
  }
  std::vector<std::vector<size_t>> out;
  for (auto t : order) out.push_back(groups[t]);
  return out;
}

at::Tensor flatten(const std::vector<at::Tensor>& tensors, const std::vector<size_t>& group, c10::ScalarType dtype,
                   bool* aliased) {
  if (group.size() == 1 && tensors[group[0]].is_contiguous() && tensors[group[0]].scalar_type() == dtype) {
    *aliased = true;
    return tensors[group[0]].view(-1);
  }
  *aliased = false;
  std::vector<at::Tensor> views;
  for (size_t i : group) views.push_back(tensors[i].reshape(-1));
  return at::cat(views).to(dtype).contiguous();
}

void unflatten(const at::Tensor& flat, const std::vector<at::Tensor>& tensors, const std::vector<size_t>& group) {
  int64_t offset = 0;
  for (size_t i : group) {
    const at::Tensor& t = tensors[i];
    t.copy_(flat.narrow(0, offset, t.numel()).view(t.sizes()));
    offset += t.numel();
  }
}

}  // namespace strata::comm::detail
