// PyTorch state_dicts of the U-Net (state_dict.h).
#include "strata/model/state_dict.h"

#include "strata/core/error.h"
#include "strata/core/files.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/serialize.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <sstream>
#include <map>
#include <regex>
#include <set>

namespace strata::model {
namespace {

// Position of each layer of a conv block in the reference's nn.Sequential.
const std::map<std::string, std::string> kToReference{{"conv1", "0"}, {"norm1", "1"}, {"conv2", "3"}, {"norm2", "4"}};

std::string block_to(const std::string& layer, const std::map<std::string, std::string>& map) {
  auto it = map.find(layer);
  return it == map.end() ? layer : it->second;
}

std::map<std::string, std::string> reversed(const std::map<std::string, std::string>& m) {
  std::map<std::string, std::string> out;
  for (const auto& [a, b] : m) out[b] = a;
  return out;
}

std::vector<char> read_bytes(const std::string& path) {
  core::require_file<core::CheckpointError>(path, "checkpoint");
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  STRATA_CHECK_AS(CheckpointError, in.good() || in.eof(), "cannot read '{}'", path);
  return bytes;
}

// torch.save(model.state_dict()) pickles a collections.OrderedDict, which libtorch's
// unpickler turns into None (it only expects OrderedDict as a tensor's unused backward
// hooks) and then fails on. Such a file is recognised by its first opcodes and named in
// a clear error instead.
bool is_ordered_dict_pickle(const std::vector<char>& bytes) {
  try {
    caffe2::serialize::PyTorchStreamReader reader(std::make_unique<caffe2::serialize::IStreamAdapter>(
        new std::istringstream(std::string(bytes.begin(), bytes.end()))));
    if (!reader.hasRecord("data.pkl")) return false;
    auto [data, size] = reader.getRecord("data.pkl");
    const std::string head(static_cast<const char*>(data.get()), std::min<size_t>(size, 64));
    return head.find("collections\nOrderedDict") == 3;  // after PROTO 2 and GLOBAL's opcode
  } catch (const c10::Error&) {
    return false;
  }
}

}  // namespace

std::string reference_name(const std::string& name) {
  static const std::regex enc(R"(enc\.(\d+)\.(conv1|norm1|conv2|norm2)\.(.+))");
  static const std::regex up(R"(dec\.(\d+)\.up\.(.+))");
  static const std::regex dec(R"(dec\.(\d+)\.block\.(conv1|norm1|conv2|norm2)\.(.+))");
  std::smatch m;
  if (std::regex_match(name, m, enc)) return fmt::format("enc.{}.{}.{}", m[1].str(), block_to(m[2], kToReference), m[3].str());
  if (std::regex_match(name, m, up)) return fmt::format("ups.{}.{}", m[1].str(), m[2].str());
  if (std::regex_match(name, m, dec)) return fmt::format("decs.{}.{}.{}", m[1].str(), block_to(m[2], kToReference), m[3].str());
  return name;
}

std::string strata_name(const std::string& name) {
  static const auto from = reversed(kToReference);
  static const std::regex enc(R"(enc\.(\d+)\.([0134])\.(.+))");
  static const std::regex up(R"(ups\.(\d+)\.(.+))");
  static const std::regex dec(R"(decs\.(\d+)\.([0134])\.(.+))");
  std::smatch m;
  if (std::regex_match(name, m, enc)) return fmt::format("enc.{}.{}.{}", m[1].str(), block_to(m[2], from), m[3].str());
  if (std::regex_match(name, m, up)) return fmt::format("dec.{}.up.{}", m[1].str(), m[2].str());
  if (std::regex_match(name, m, dec)) return fmt::format("dec.{}.block.{}.{}", m[1].str(), block_to(m[2], from), m[3].str());
  return name;
}

bool is_state_dict(const std::string& path) {
  core::require_file<core::CheckpointError>(path, "checkpoint");
  try {
    // A libtorch archive (Strata's checkpoints) is a TorchScript container with
    // constants.pkl; torch.save and pickle_save write data.pkl alone.
    caffe2::serialize::PyTorchStreamReader reader(path);
    return !reader.hasRecord("constants.pkl") && reader.hasRecord("data.pkl");
  } catch (const c10::Error& e) {
    STRATA_THROW(CheckpointError,
                 "checkpoint '{}' is corrupt or not a libtorch archive (nor a PyTorch state_dict written by "
                 "torch.save): {}",
                 path, e.what_without_backtrace());
  }
}

void export_state_dict(const nn::UNet2d& model, const std::string& path) {
  c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
  for (const auto& p : model->named_parameters()) dict.insert(reference_name(p.key()), p.value().detach().cpu());
  for (const auto& b : model->named_buffers()) dict.insert(reference_name(b.key()), b.value().detach().cpu());
  // torch::pickle_save's container (data.pkl, data/<i>, as torch.save writes), but
  // without its type tags (torch.jit._pickle.restore_type_tag), which Python's
  // torch.load refuses by default (weights_only=True): a plain dict of tensors.
  std::string pkl;
  torch::jit::Pickler pickler([&pkl](const char* buf, size_t n) { pkl.append(buf, n); }, nullptr, nullptr, nullptr,
                              nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(c10::IValue(dict));
  pickler.stop();
  std::string bytes;
  caffe2::serialize::PyTorchStreamWriter writer([&bytes](const void* buf, size_t n) {
    bytes.append(static_cast<const char*>(buf), n);
    return n;
  });
  writer.writeRecord("data.pkl", pkl.data(), pkl.size());
  const auto& tensors = pickler.tensorData();
  for (size_t i = 0; i < tensors.size(); ++i) {
    auto data = torch::jit::getWriteableTensorData(tensors[i]);
    writer.writeRecord(fmt::format("data/{}", i), data.data(), data.sizeInBytes());
  }
  writer.writeEndOfFile();
  core::write_file_atomic(path, bytes, "PyTorch state_dict");
}

void import_state_dict(nn::UNet2d& model, const std::string& path) {
  c10::IValue value;
  try {
    const std::vector<char> bytes = read_bytes(path);
    STRATA_CHECK_AS(CheckpointError, !is_ordered_dict_pickle(bytes),
                    "'{}' holds a collections.OrderedDict, as torch.save(model.state_dict()) writes it, which "
                    "libtorch cannot read: save a plain dict instead, torch.save(dict(model.state_dict()), path)",
                    path);
    value = torch::pickle_load(bytes);
  } catch (const c10::Error& e) {
    STRATA_THROW(CheckpointError, "cannot read the PyTorch state_dict '{}': {}", path, e.what_without_backtrace());
  }
  STRATA_CHECK_AS(CheckpointError, value.isGenericDict(),
                  "'{}' holds a {}, not a state_dict (a dict of tensors, as torch.save(model.state_dict()) writes)",
                  path, value.tagKind());
  std::map<std::string, torch::Tensor> given;
  for (const auto& item : value.toGenericDict()) {
    STRATA_CHECK_AS(CheckpointError, item.key().isString() && item.value().isTensor(),
                    "'{}' is not a state_dict: an entry is not a name and a tensor", path);
    std::string key = item.key().toStringRef();
    if (key.rfind("module.", 0) == 0) key = key.substr(7);  // saved from DistributedDataParallel
    given[strata_name(key)] = item.value().toTensor();
  }
  std::set<std::string> used;
  torch::NoGradGuard no_grad;
  auto load = [&](const std::string& name, torch::Tensor& target) {
    auto it = given.find(name);
    STRATA_CHECK_AS(CheckpointError, it != given.end(), "'{}' has no '{}' (PyTorch name '{}') that {} needs", path,
                    name, reference_name(name), model->describe());
    STRATA_CHECK_AS(CheckpointError, it->second.sizes() == target.sizes(),
                    "'{}': '{}' (PyTorch name '{}') has shape {} where {} needs {}", path, name, reference_name(name),
                    it->second.sizes(), model->describe(), target.sizes());
    target.copy_(it->second.to(target.dtype()));
    used.insert(name);
  };
  for (auto& p : model->named_parameters()) load(p.key(), p.value());
  for (auto& b : model->named_buffers()) load(b.key(), b.value());
  std::vector<std::string> extra;
  for (const auto& [k, v] : given) {
    if (!used.count(k)) extra.push_back(k);
  }
  STRATA_CHECK_AS(CheckpointError, extra.empty(), "'{}' has key(s) that {} does not: {}", path, model->describe(),
                  fmt::join(extra, ", "));
}

}  // namespace strata::model
