// PyTorch state_dicts of the U-Net (state_dict.h).
#include "strata/model/state_dict.h"

#include "strata/core/error.h"
#include "strata/core/files.h"
#include "strata/model/checkpoint.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/serialize.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <optional>
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

// torch.save(model.state_dict()) pickles a collections.OrderedDict (with a `_metadata`
// attribute), which libtorch's unpickler turns into None: it meets OrderedDict only as
// a tensor's unused backward hooks. Such a data.pkl is rewritten, in memory, into one
// whose top-level object is a tuple (the OrderedDict class, a plain dict of the items):
//   PROTO 2, GLOBAL collections.OrderedDict, BINPUT 0, EMPTY_TUPLE, REDUCE, <items>,
//   <state>, BUILD, STOP
// becomes
//   PROTO 2, MARK, GLOBAL collections.OrderedDict, BINPUT 0, EMPTY_DICT, <items>, TUPLE, STOP
// (memo 0 stays the class, which the tensors' hooks call). <state> is found by walking
// the opcodes with the stack's depth: it is what follows the last point, after the
// head, where only the dict is on the stack. Any opcode this walk does not know leaves
// the file as it is, and reading it then fails with the error below.
std::optional<std::string> plain_dict_pickle(const std::string& pkl) {
  const std::string head = std::string("\x80\x02", 2) + "ccollections\nOrderedDict\nq" + std::string(1, '\0') + ")R";
  if (pkl.compare(0, head.size(), head) != 0 || pkl.size() < head.size() + 2) return std::nullopt;
  auto u32 = [&](size_t at) {
    uint32_t v = 0;
    for (int b = 3; b >= 0; --b) v = (v << 8) | static_cast<uint8_t>(pkl[at + b]);
    return v;
  };
  int64_t depth = 1;            // the dict REDUCE left
  std::vector<int64_t> marks;   // depths at each MARK
  size_t at = head.size(), state = std::string::npos;
  std::vector<size_t> at_one;   // positions (after the head) where only the dict is on the stack
  while (at < pkl.size()) {
    if (depth == 1 && marks.empty()) at_one.push_back(at);
    const char op = pkl[at++];
    auto to_mark = [&] {
      if (marks.empty()) return false;
      depth = marks.back();
      marks.pop_back();
      return true;
    };
    switch (op) {
      case 'q': at += 1; break;                                   // BINPUT
      case 'r': at += 4; break;                                   // LONG_BINPUT
      case 'h': at += 1; ++depth; break;                          // BINGET
      case 'j': at += 4; ++depth; break;                          // LONG_BINGET
      case 'K': at += 1; ++depth; break;                          // BININT1
      case 'M': at += 2; ++depth; break;                          // BININT2
      case 'J': at += 4; ++depth; break;                          // BININT
      case 'G': at += 8; ++depth; break;                          // BINFLOAT
      case 'X': at += 4 + u32(at); ++depth; break;                // BINUNICODE
      case '\x8a': at += 1 + static_cast<uint8_t>(pkl[at]); ++depth; break;  // LONG1
      case '}': case ')': case ']': case '\x88': case '\x89': case 'N': ++depth; break;
      case 'c': {                                                 // GLOBAL module\nname\n
        const size_t a = pkl.find('\n', at), b = a == std::string::npos ? a : pkl.find('\n', a + 1);
        if (b == std::string::npos) return std::nullopt;
        at = b + 1;
        ++depth;
        break;
      }
      case '(': marks.push_back(depth); break;                    // MARK
      case 't': if (!to_mark()) return std::nullopt; ++depth; break;  // TUPLE
      case '\x85': break;                                         // TUPLE1
      case '\x86': --depth; break;                                // TUPLE2
      case '\x87': depth -= 2; break;                             // TUPLE3
      case 'R': --depth; break;                                   // REDUCE
      case 'Q': break;                                            // BINPERSID
      case 's': depth -= 2; break;                                // SETITEM
      case 'u': case 'e': if (!to_mark()) return std::nullopt; break;  // SETITEMS, APPENDS
      case 'a': --depth; break;                                   // APPEND
      case 'b': --depth; break;                                   // BUILD
      case '.':                                                   // STOP
        // at_one ends with STOP's own position (after BUILD); the state began at the one before.
        if (at != pkl.size() || pkl[pkl.size() - 2] != 'b' || at_one.size() < 2 || at_one.back() != pkl.size() - 1) {
          return std::nullopt;
        }
        state = at_one[at_one.size() - 2];
        break;
      default: return std::nullopt;
    }
    if (depth < 0) return std::nullopt;
    if (op == '.') break;
  }
  if (state == std::string::npos) return std::nullopt;
  std::string out = std::string("\x80\x02", 2) + "(" + pkl.substr(2, head.size() - 4) + "}";
  out += pkl.substr(head.size(), state - head.size());
  out += "t.";
  return out;
}

// The bytes to unpickle: torch.save's OrderedDict rewritten as above, else as read.
std::vector<char> readable(const std::vector<char>& bytes) {
  try {
    // IStreamAdapter does not own its stream (a `new` one leaked the whole file per import).
    std::istringstream stream(std::string(bytes.begin(), bytes.end()));
    caffe2::serialize::PyTorchStreamReader reader(std::make_unique<caffe2::serialize::IStreamAdapter>(&stream));
    if (!reader.hasRecord("data.pkl")) return bytes;
    auto [data, size] = reader.getRecord("data.pkl");
    const auto pkl = plain_dict_pickle(std::string(static_cast<const char*>(data.get()), size));
    if (!pkl) return bytes;
    std::string out;
    caffe2::serialize::PyTorchStreamWriter writer([&out](const void* buf, size_t n) {
      out.append(static_cast<const char*>(buf), n);
      return n;
    });
    for (const auto& name : reader.getAllRecords()) {
      if (name == "data.pkl") {
        writer.writeRecord(name, pkl->data(), pkl->size());
      } else if (name.rfind("data/", 0) == 0) {
        auto [rec, n] = reader.getRecord(name);
        writer.writeRecord(name, rec.get(), n);
      }
    }
    writer.writeEndOfFile();
    return std::vector<char>(out.begin(), out.end());
  } catch (const c10::Error&) {
    return bytes;
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
  // Through libzip, not libtorch's PyTorchStreamReader, which leaks its zip reader when
  // its constructor throws on a damaged archive (fuzz_checkpoint's leak finding).
  // Records are "<archive>/<name>", as PyTorchStreamReader finds them. A libtorch
  // archive (Strata's checkpoints) is a TorchScript container with constants.pkl;
  // torch.save and pickle_save write data.pkl alone.
  const std::vector<std::string> names = zip_record_names(path, "checkpoint");
  const std::string archive = names.empty() ? "" : names.front().substr(0, names.front().find('/'));
  auto has = [&](const std::string& record) {
    return std::find(names.begin(), names.end(), archive + "/" + record) != names.end();
  };
  return !has("constants.pkl") && has("data.pkl");
}

void export_state_dict(const nn::Model& model, const std::string& path) {
  c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
  for (const auto& p : model.named_parameters()) dict.insert(reference_name(p.key()), p.value().detach().cpu());
  for (const auto& b : model.named_buffers()) dict.insert(reference_name(b.key()), b.value().detach().cpu());
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

void import_state_dict(nn::Model& model, const std::string& path) {
  verify_zip_records(path, "PyTorch state_dict");
  c10::IValue value;
  try {
    value = torch::pickle_load(readable(read_bytes(path)));
  } catch (const std::exception& e) {  // c10::Error, or a failed lookup in a damaged pickle
    STRATA_THROW(CheckpointError,
                 "cannot read the PyTorch state_dict '{}' (saving it as torch.save(dict(model.state_dict()), path) "
                 "gives the simplest form): {}",
                 path, reason_of(e));
  }
  // A rewritten OrderedDict: (the class, the dict).
  if (value.isTuple() && !value.toTupleRef().elements().empty() && value.toTupleRef().elements().back().isGenericDict()) {
    value = value.toTupleRef().elements().back();
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
                    name, reference_name(name), model.describe());
    STRATA_CHECK_AS(CheckpointError, it->second.sizes() == target.sizes(),
                    "'{}': '{}' (PyTorch name '{}') has shape {} where {} needs {}", path, name, reference_name(name),
                    it->second.sizes(), model.describe(), target.sizes());
    target.copy_(it->second.to(target.dtype()));
    used.insert(name);
  };
  for (auto& p : model.named_parameters()) load(p.key(), p.value());
  for (auto& b : model.named_buffers()) load(b.key(), b.value());
  std::vector<std::string> extra;
  for (const auto& [k, v] : given) {
    if (!used.count(k)) extra.push_back(k);
  }
  STRATA_CHECK_AS(CheckpointError, extra.empty(), "'{}' has key(s) that {} does not: {}", path, model.describe(),
                  fmt::join(extra, ", "));
}

}  // namespace strata::model
