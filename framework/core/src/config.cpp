// Strict YAML config decoding, overrides and hashing (see config.h).
#include "strata/core/config.h"
#include "strata/core/markdown.h"

#include <algorithm>

namespace strata::core {
namespace {

// Levenshtein distance, for "did you mean" hints on misspelt keys.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string trim(std::string s) {
  auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

}  // namespace

Check<std::string> one_of(std::vector<std::string> choices) {
  std::string rule = fmt::format("{}", fmt::join(choices, ", "));
  return {[choices = std::move(choices)](const std::string& v) {
            if (std::find(choices.begin(), choices.end(), v) != choices.end()) return std::string();
            return fmt::format("must be one of {}", fmt::join(choices, ", "));
          },
          rule};
}

ConfigDecoder::ConfigDecoder(YAML::Node node, std::string path, const ConfigSource* source)
    : node_(std::move(node)), path_(std::move(path)), source_(source) {
  if (!node_.IsMap()) {
    fail(path_, node_, "must be a mapping (a section of keys)");
  }
}

std::string ConfigDecoder::describe(const YAML::Node& node) {
  if (node.IsScalar()) return fmt::format("'{}'", node.Scalar());
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  return "nothing";
}

void ConfigDecoder::fail(const std::string& path, const YAML::Node& node, const std::string& why) const {
  // Name where the value came from: the --set assignment that wrote it, else file:line.
  std::string origin;
  for (const auto& o : source_->overrides) {
    std::string key = trim(o.substr(0, o.find('=')));
    if (key == path || path.rfind(key + ".", 0) == 0 || key.rfind(path + ".", 0) == 0) {
      origin = fmt::format("--set {}", o);
    }
  }
  if (origin.empty()) {
    origin = node.Mark().is_null() ? source_->file : fmt::format("{}:{}", source_->file, node.Mark().line + 1);
  }
  throw ConfigError(fmt::format("'{}' {} (in {})", path.empty() ? "<top level>" : path, why, origin));
}

void ConfigDecoder::finish() const {
  for (const auto& kv : node_) {
    std::string key = kv.first.as<std::string>();
    if (std::find(seen_.begin(), seen_.end(), key) != seen_.end()) continue;
    std::string hint;
    size_t best = 3;  // suggest only close matches
    for (const auto& s : seen_) {
      size_t d = edit_distance(key, s);
      if (d < best) best = d, hint = fmt::format("; did you mean '{}'?", s);
    }
    std::string path = path_.empty() ? key : path_ + "." + key;
    fail(path, kv.first,
         fmt::format("is not a known key (known here: {}{})", fmt::join(seen_, ", "), hint));
  }
}

void apply_override(YAML::Node& root, const std::string& assignment, const std::string& source) {
  size_t eq = assignment.find('=');
  std::string key = trim(eq == std::string::npos ? "" : assignment.substr(0, eq));
  if (key.empty()) STRATA_THROW(ConfigError, "--set expects key.path=value, got '{}'", assignment);
  std::string text = assignment.substr(eq + 1);

  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    size_t dot = key.find('.', start);
    parts.push_back(key.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  for (const auto& p : parts) {
    if (p.empty()) STRATA_THROW(ConfigError, "--set {}: empty key component in '{}'", assignment, key);
  }
  YAML::Node value = text.empty() ? YAML::Node(std::string()) : parse_yaml(text, "--set " + assignment);

  if (!root.IsDefined() || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  // A value or a list at the top has no sections to set (yaml-cpp's operator[] would throw).
  if (!root.IsMap()) STRATA_THROW(ConfigError, "--set {}: the top level of {} is not a mapping of sections", assignment, source);
  // yaml-cpp nodes are handles whose operator= copies content, so walk with reset().
  YAML::Node cur;
  cur.reset(root);
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node next = cur[parts[i]];
    if (!next.IsDefined() || next.IsNull()) {
      cur[parts[i]] = YAML::Node(YAML::NodeType::Map);
      next.reset(cur[parts[i]]);
    } else if (!next.IsMap()) {
      STRATA_THROW(ConfigError, "--set {}: '{}' is a value, not a section", assignment, parts[i]);
    }
    cur.reset(next);
  }
  cur[parts.back()] = value;
}

namespace {

// Throws ConfigError for the first key that appears twice in one mapping, anywhere in
// the tree, naming its dotted path and both lines.
void check_unique_keys(const YAML::Node& node, const std::string& prefix, const std::string& source) {
  if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i) check_unique_keys(node[i], fmt::format("{}[{}]", prefix, i), source);
    return;
  }
  if (!node.IsMap()) return;
  std::vector<std::pair<std::string, YAML::Mark>> keys;
  for (const auto& kv : node) {
    std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string("<complex key>");
    std::string path = prefix.empty() ? key : prefix + "." + key;
    for (const auto& [seen, mark] : keys) {
      if (seen == key) {
        throw ConfigError(fmt::format("{}:{}: '{}' is given twice (first at line {}); YAML would keep only the first, "
                                      "so merge the two",
                                      source, kv.first.Mark().line + 1, path, mark.line + 1));
      }
    }
    keys.emplace_back(key, kv.first.Mark());
    check_unique_keys(kv.second, path, source);
  }
}

}  // namespace

YAML::Node parse_yaml(const std::string& text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("{}:{}: invalid YAML: {}", source, e.mark.line + 1, e.msg));
  }
  check_unique_keys(root, "", source);
  return root;
}

YAML::Node load_yaml_file(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw ConfigError(fmt::format("cannot read config file '{}'", path));
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("{}:{}: invalid YAML: {}", path, e.mark.line + 1, e.msg));
  }
  check_unique_keys(root, "", path);
  return root;
}

namespace {

// Flattens a YAML tree into (dotted key, value text) pairs; lists stay whole.
void flatten(const YAML::Node& node, const std::string& prefix, std::vector<std::pair<std::string, std::string>>* out) {
  if (node.IsMap()) {
    for (const auto& kv : node) {
      std::string key = kv.first.as<std::string>();
      flatten(kv.second, prefix.empty() ? key : prefix + "." + key, out);
    }
    return;
  }
  YAML::Emitter e;
  e << YAML::Flow << node;
  out->emplace_back(prefix, e.c_str());
}

}  // namespace

std::vector<std::string> diff_yaml(const std::string& a, const std::string& b) {
  std::vector<std::pair<std::string, std::string>> fa, fb;
  flatten(parse_yaml(a, "<config a>"), "", &fa);
  flatten(parse_yaml(b, "<config b>"), "", &fb);
  auto find = [](const auto& flat, const std::string& key) -> const std::string* {
    for (const auto& kv : flat) {
      if (kv.first == key) return &kv.second;
    }
    return nullptr;
  };
  std::vector<std::string> out;
  for (const auto& [key, value] : fa) {
    const std::string* other = find(fb, key);
    if (!other) {
      out.push_back(fmt::format("{}: {} -> (absent)", key, value));
    } else if (*other != value) {
      out.push_back(fmt::format("{}: {} -> {}", key, value, *other));
    }
  }
  for (const auto& [key, value] : fb) {
    if (!find(fa, key)) out.push_back(fmt::format("{}: (absent) -> {}", key, value));
  }
  return out;
}

std::string reference_markdown(const std::vector<ReferenceSection>& sections) {
  std::string out;
  for (const auto& s : sections) {
    if (s.rows.empty()) continue;
    out += fmt::format("## {}\n\n", s.path.empty() ? "top level" : "`" + s.path + "`");
    if (!s.doc.empty()) out += md_text(md_sentence(s.doc)) + "\n\n";
    out += "| Key | Type | Default | Allowed | Description |\n|---|---|---|---|---|\n";
    for (const auto& r : s.rows) {
      out += fmt::format("| {} | {} | {} | {} | {} |\n", md_code(r.key), r.type, md_code(r.value), md_text(r.allowed),
                         md_text(r.doc));
    }
    out += "\n";
  }
  return out;
}

uint64_t fnv1a64(std::string_view bytes) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string hash_hex(uint64_t hash) { return fmt::format("{:016x}", hash); }

}  // namespace strata::core
