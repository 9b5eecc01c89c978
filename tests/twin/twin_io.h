// Tensors to and from Python for the twin tools (strata_net3d, strata_step3d): a dict of
// tensors as torch.save writes it (read) or as torch.load reads it (write), through
// libtorch's pickler. No checks beyond the pickler's: these files are the test's own.
#pragma once

#include <torch/serialize.h>
#include <torch/torch.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace strata::twin {

inline c10::Dict<c10::IValue, c10::IValue> read_dict(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return torch::pickle_load(bytes).toGenericDict();
}

inline void write_dict(const c10::impl::GenericDict& dict, const std::string& path) {
  const auto bytes = torch::pickle_save(c10::IValue(dict));
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace strata::twin
