// Typed configuration from YAML: structs with defaults, strict decoding, `--set`
// overrides, printing and hashing.
//
// A config struct lists its fields once, in a `visit` member, with a one-line doc
// and an optional check:
//
//   struct TrainConfig {
//     double lr = 1e-4;   // Adam learning rate
//     int epochs = 10;    // passes over the training split
//     template <class V> void visit(V& v) {
//       v("lr", lr, "Adam learning rate", core::greater_than(0.0));
//       v("epochs", epochs, "passes over the training split", core::at_least(1));
//     }
//     void validate() const;  // optional: cross-field checks, throws ConfigError
//   };
//
// Nested structs with their own `visit` are sections. Decoding is strict: an unknown
// key, a wrong type or a failed check is a ConfigError that names the dotted key and
// where it came from (file:line, or the `--set` assignment). Keys that are absent keep
// their defaults. `to_yaml` prints the resolved config (every key, defaults included)
// and `config_hash` hashes that text, so ranks and checkpoints can compare configs.
#pragma once

#include "strata/core/error.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace strata::core {

// A check returns "" when the value is fine, else the reason ("must be > 0").
template <class T>
using Check = std::function<std::string(const T&)>;

template <class T>
Check<T> in_range(T lo, T hi) {
  return [=](const T& v) { return v >= lo && v <= hi ? std::string() : fmt::format("must be in [{}, {}]", lo, hi); };
}
template <class T>
Check<T> at_least(T lo) {
  return [=](const T& v) { return v >= lo ? std::string() : fmt::format("must be >= {}", lo); };
}
template <class T>
Check<T> greater_than(T lo) {
  return [=](const T& v) { return v > lo ? std::string() : fmt::format("must be > {}", lo); };
}
Check<std::string> one_of(std::vector<std::string> choices);
// Applies `check` to every element; the reason names the index.
template <class T>
Check<std::vector<T>> each(Check<T> check) {
  return [=](const std::vector<T>& v) {
    for (size_t i = 0; i < v.size(); ++i) {
      std::string why = check(v[i]);
      if (!why.empty()) return fmt::format("element {} {}", i, why);
    }
    return std::string();
  };
}
template <class T>
Check<std::vector<T>> length_in(size_t lo, size_t hi) {
  return [=](const std::vector<T>& v) {
    return v.size() >= lo && v.size() <= hi ? std::string()
                                            : fmt::format("must have {} to {} elements, has {}", lo, hi, v.size());
  };
}
template <class T>
Check<T> all_of(Check<T> a, Check<T> b) {
  return [=](const T& v) {
    std::string why = a(v);
    return why.empty() ? b(v) : why;
  };
}

// Where a config came from, for error messages.
struct ConfigSource {
  std::string file;                    // YAML file, or a description ("checkpoint x.pt")
  std::vector<std::string> overrides;  // the `--set key=value` assignments applied
};

namespace detail {

template <class T, class = void>
struct HasVisit : std::false_type {};
template <class T>
struct HasVisit<T, std::void_t<decltype(std::declval<T&>().visit(std::declval<int&>()))>> : std::true_type {};
template <class T, class = void>
struct HasValidate : std::false_type {};
template <class T>
struct HasValidate<T, std::void_t<decltype(std::declval<const T&>().validate())>> : std::true_type {};
template <class T>
struct IsVector : std::false_type {};
template <class T>
struct IsVector<std::vector<T>> : std::true_type {};

// "a number", "an integer", "true or false", ...: what a value of T must look like.
template <class T>
const char* expected_kind() {
  if constexpr (std::is_same_v<T, bool>) return "true or false";
  else if constexpr (std::is_integral_v<T>) return "an integer";
  else if constexpr (std::is_floating_point_v<T>) return "a finite number";
  else return "a string";
}

// Scalar text to T; false when it does not parse (yaml-cpp's own conversion rules), or
// when a float is not finite: YAML's .inf and .nan parse as numbers, but no key of a
// recipe means anything with them (train.lr=.inf would train on NaN).
template <class T>
bool convert_scalar(const YAML::Node& node, T* out) {
  if (!node.IsScalar() || !YAML::convert<T>::decode(node, *out)) return false;
  if constexpr (std::is_floating_point_v<T>) return std::isfinite(*out);
  return true;
}

}  // namespace detail

// Visitor that fills a struct from a YAML mapping (see the header comment).
class ConfigDecoder {
 public:
  ConfigDecoder(YAML::Node node, std::string path, const ConfigSource* source);

  template <class T>
  void operator()(const char* key, T& value, const char* doc, Check<T> check = {}) {
    const YAML::Node& map = node_;
    YAML::Node child = map[key];
    seen_.emplace_back(key);
    if (!child.IsDefined()) return;  // absent: keep the default
    std::string path = join(key);
    if constexpr (detail::HasVisit<T>::value) {
      if (child.IsNull()) return;  // "section:" with nothing under it
      ConfigDecoder sub(child, path, source_);
      value.visit(sub);
      sub.finish();
    } else if constexpr (detail::IsVector<T>::value) {
      using E = typename T::value_type;
      if (!child.IsSequence()) fail(path, child, fmt::format("must be a list of {}", detail::expected_kind<E>()));
      T parsed;
      for (size_t i = 0; i < child.size(); ++i) {
        E e{};
        if (!detail::convert_scalar(child[i], &e)) {
          fail(fmt::format("{}[{}]", path, i), child[i],
               fmt::format("must be {}, got {}", detail::expected_kind<E>(), describe(child[i])));
        }
        parsed.push_back(std::move(e));
      }
      value = std::move(parsed);
    } else {
      T parsed{};
      if (!detail::convert_scalar(child, &parsed)) {
        fail(path, child, fmt::format("must be {}, got {}", detail::expected_kind<T>(), describe(child)));
      }
      value = std::move(parsed);
    }
    if (check) {
      std::string why = check(value);
      if (!why.empty()) fail(path, child, fmt::format("= {}: {}", describe(child), why));
    }
  }

  // Throws ConfigError for keys present in the YAML that no field claimed.
  void finish() const;

 private:
  std::string join(const char* key) const { return path_.empty() ? key : path_ + "." + key; }
  static std::string describe(const YAML::Node& node);
  [[noreturn]] void fail(const std::string& path, const YAML::Node& node, const std::string& why) const;

  YAML::Node node_;
  std::string path_;
  const ConfigSource* source_;
  std::vector<std::string> seen_;
};

// Visitor that writes the resolved values as YAML (with the docs as comments).
class ConfigEncoder {
 public:
  ConfigEncoder(YAML::Emitter* out, bool comments) : out_(out), comments_(comments) {}

  template <class T>
  void operator()(const char* key, T& value, const char* doc, Check<T> = {}) {
    *out_ << YAML::Key << key << YAML::Value;
    if constexpr (detail::HasVisit<T>::value) {
      *out_ << YAML::BeginMap;
      value.visit(*this);
      *out_ << YAML::EndMap;
    } else if constexpr (detail::IsVector<T>::value) {
      *out_ << YAML::Flow << YAML::BeginSeq;
      for (const auto& e : value) emit(e);
      *out_ << YAML::EndSeq;
      comment(doc);
    } else {
      emit(value);
      comment(doc);
    }
  }

 private:
  template <class T>
  void emit(const T& v) {
    if constexpr (std::is_floating_point_v<T>) {
      *out_ << fmt::format("{}", v);  // shortest round-trip form: stable text, stable hash
    } else {
      *out_ << v;
    }
  }
  void comment(const char* doc) {
    if (comments_ && doc && *doc) *out_ << YAML::Comment(doc);
  }
  YAML::Emitter* out_;
  bool comments_;
};

// Visitor that calls `validate()` on every section that has one, innermost first.
class ConfigValidator {
 public:
  template <class T>
  void operator()(const char*, T& value, const char*, Check<T> = {}) {
    if constexpr (detail::HasVisit<T>::value) {
      value.visit(*this);
      if constexpr (detail::HasValidate<T>::value) value.validate();
    }
  }
};

// Applies one `key.path=value` assignment to a YAML tree. The value is parsed as YAML,
// so `--set loss.weights=[0.1,4,1,1]` gives a list. `source` (the file) names a top level
// that is no mapping in the ConfigError.
void apply_override(YAML::Node& root, const std::string& assignment, const std::string& source);

// Parses YAML text; syntax errors and a key given twice in one mapping (yaml-cpp keeps
// the first silently, so a second `train:` section would be ignored) become ConfigError
// naming `source` and the lines.
YAML::Node parse_yaml(const std::string& text, const std::string& source);
YAML::Node load_yaml_file(const std::string& path);

template <class S>
S decode_config(YAML::Node root, const ConfigSource& source) {
  S config;
  if (root.IsDefined() && !root.IsNull()) {
    if (!root.IsMap()) STRATA_THROW(ConfigError, "{}: the top level must be a mapping of sections", source.file);
    ConfigDecoder decoder(root, "", &source);
    config.visit(decoder);
    decoder.finish();
  }
  ConfigValidator validator;
  config.visit(validator);
  if constexpr (detail::HasValidate<S>::value) config.validate();
  return config;
}

// Loads `path` (empty: defaults only), applies `overrides`, decodes strictly.
template <class S>
S load_config(const std::string& path, const std::vector<std::string>& overrides = {}) {
  ConfigSource source{path.empty() ? "<defaults>" : path, overrides};
  YAML::Node root = path.empty() ? YAML::Node(YAML::NodeType::Map) : load_yaml_file(path);
  for (const auto& o : overrides) apply_override(root, o, source.file);
  return decode_config<S>(root, source);
}

// Same as load_config, from text (a stored config, a test).
template <class S>
S parse_config(const std::string& text, const std::vector<std::string>& overrides = {},
               const std::string& source_name = "<string>") {
  ConfigSource source{source_name, overrides};
  YAML::Node root = parse_yaml(text, source_name);
  for (const auto& o : overrides) apply_override(root, o, source.file);
  return decode_config<S>(root, source);
}

// The resolved config as YAML: every key, defaults included, in declaration order.
template <class S>
std::string to_yaml(const S& config, bool comments = false) {
  S copy = config;  // visit() takes fields by reference
  YAML::Emitter out;
  out << YAML::BeginMap;
  ConfigEncoder encoder(&out, comments);
  copy.visit(encoder);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

// Keys whose values differ between two resolved configs (YAML text), as
// "train.lr: 0.0001 -> 5e-05" lines, in a's key order then keys only b has. Used to
// explain why a checkpoint does not match the current config.
std::vector<std::string> diff_yaml(const std::string& a, const std::string& b);

uint64_t fnv1a64(std::string_view bytes);
std::string hash_hex(uint64_t hash);

// Hash of the resolved config text: equal configs hash equal on every rank and host.
template <class S>
uint64_t config_hash(const S& config) {
  return fnv1a64(to_yaml(config, false));
}

}  // namespace strata::core
