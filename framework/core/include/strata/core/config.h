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

// A check returns "" when the value is fine, else the reason ("must be > 0"). Its `rule`
// says what it allows ("[0, 1]", "one of a, b"), for the config reference.
template <class T>
class Check {
 public:
  using Fn = std::function<std::string(const T&)>;
  Check() = default;
  Check(Fn fn, std::string rule = "") : fn_(std::move(fn)), rule_(std::move(rule)) {}
  template <class F, class = std::enable_if_t<std::is_invocable_r_v<std::string, F, const T&> &&
                                              !std::is_same_v<std::decay_t<F>, Check>>>
  Check(F fn) : fn_(std::move(fn)) {}  // NOLINT: a lambda is a check without a stated rule

  std::string operator()(const T& v) const { return fn_(v); }
  explicit operator bool() const { return static_cast<bool>(fn_); }
  const std::string& rule() const { return rule_; }

 private:
  Fn fn_;
  std::string rule_;
};

template <class T>
Check<T> in_range(T lo, T hi) {
  return {[=](const T& v) { return v >= lo && v <= hi ? std::string() : fmt::format("must be in [{}, {}]", lo, hi); },
          fmt::format("[{}, {}]", lo, hi)};
}
template <class T>
Check<T> at_least(T lo) {
  return {[=](const T& v) { return v >= lo ? std::string() : fmt::format("must be >= {}", lo); },
          fmt::format(">= {}", lo)};
}
template <class T>
Check<T> greater_than(T lo) {
  return {[=](const T& v) { return v > lo ? std::string() : fmt::format("must be > {}", lo); },
          fmt::format("> {}", lo)};
}
Check<std::string> one_of(std::vector<std::string> choices);
// Applies `check` to every element; the reason names the index.
template <class T>
Check<std::vector<T>> each(Check<T> check) {
  return {[=](const std::vector<T>& v) {
            for (size_t i = 0; i < v.size(); ++i) {
              std::string why = check(v[i]);
              if (!why.empty()) return fmt::format("element {} {}", i, why);
            }
            return std::string();
          },
          check.rule().empty() ? "" : "each " + check.rule()};
}
template <class T>
Check<std::vector<T>> length_in(size_t lo, size_t hi) {
  return {[=](const std::vector<T>& v) {
            return v.size() >= lo && v.size() <= hi
                       ? std::string()
                       : fmt::format("must have {} to {} elements, has {}", lo, hi, v.size());
          },
          lo == hi ? fmt::format("{} elements", lo) : fmt::format("{} to {} elements", lo, hi)};
}
template <class T>
Check<T> all_of(Check<T> a, Check<T> b) {
  std::string rule = a.rule().empty() || b.rule().empty() ? a.rule() + b.rule() : a.rule() + "; " + b.rule();
  return {[=](const T& v) {
            std::string why = a(v);
            return why.empty() ? b(v) : why;
          },
          rule};
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

// One section of the config reference: its dotted path, its doc and one row per key.
struct ReferenceRow {
  std::string key;      // dotted: "train.lr"
  std::string type;     // "number", "list of integers", ...
  std::string value;    // the default, as YAML would print it
  std::string allowed;  // the check's rule ("[0, 1]", "one of ...")
  std::string doc;
};
struct ReferenceSection {
  std::string path;  // "train", "data.augment"
  std::string doc;
  std::vector<ReferenceRow> rows;
};

namespace detail {

template <class T>
std::string type_name() {
  if constexpr (IsVector<T>::value) {
    using E = typename T::value_type;
    if constexpr (std::is_same_v<E, bool>) return "list of booleans";
    else if constexpr (std::is_integral_v<E>) return "list of integers";
    else if constexpr (std::is_floating_point_v<E>) return "list of numbers";
    else return "list of strings";
  } else if constexpr (std::is_same_v<T, bool>) {
    return "boolean";
  } else if constexpr (std::is_integral_v<T>) {
    return "integer";
  } else if constexpr (std::is_floating_point_v<T>) {
    return "number";
  } else {
    return "string";
  }
}

template <class T>
std::string value_text(const T& v) {
  if constexpr (IsVector<T>::value) {
    std::vector<std::string> parts;
    for (const auto& e : v) parts.push_back(value_text(e));
    return fmt::format("[{}]", fmt::join(parts, ", "));
  } else if constexpr (std::is_same_v<T, bool>) {
    return v ? "true" : "false";
  } else if constexpr (std::is_arithmetic_v<T>) {
    return fmt::format("{}", v);
  } else {
    return v.empty() ? std::string("\"\"") : std::string(v);
  }
}

}  // namespace detail

// Visitor that lists every key with its type, default (the visited values), rule and
// doc: the same `visit` the decoder walks, so the reference cannot miss a key.
class ConfigReference {
 public:
  ConfigReference(std::vector<ReferenceSection>* out, size_t section) : out_(out), section_(section) {}

  template <class T>
  void operator()(const char* key, T& value, const char* doc, Check<T> check = {}) {
    const std::string path = join(key);
    if constexpr (detail::HasVisit<T>::value) {
      out_->push_back({path, doc, {}});
      ConfigReference sub(out_, out_->size() - 1);
      value.visit(sub);
    } else {
      (*out_)[section_].rows.push_back(
          {path, detail::type_name<T>(), detail::value_text(value), check ? check.rule() : "", doc});
    }
  }

 private:
  std::string join(const char* key) const {
    const std::string& p = (*out_)[section_].path;
    return p.empty() ? key : p + "." + key;
  }
  std::vector<ReferenceSection>* out_;
  size_t section_;
};

// Every section of `config` (its values as the defaults), in declaration order; the
// top level is the first, unnamed section (rows only for keys outside any section).
template <class S>
std::vector<ReferenceSection> config_reference(const S& config) {
  S copy = config;  // visit() takes fields by reference
  std::vector<ReferenceSection> sections{{"", "", {}}};
  ConfigReference reference(&sections, 0);
  copy.visit(reference);
  return sections;
}

// The reference as Markdown: one heading and one table (key, type, default, allowed,
// description) per section with keys.
std::string reference_markdown(const std::vector<ReferenceSection>& sections);

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
