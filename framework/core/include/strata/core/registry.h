// NamedRegistry: factories by name, for the registries recipes, tests and benchmarks
// extend (tasks: train/task_registry.h; models: nn/model_registry.h). One process-wide
// instance per kind, thread-safe. Registration is explicit (call add before find,
// e.g. from main or a std::call_once): a static registrar in a static library is
// dropped by the linker when nothing else references its object file.
#pragma once

#include "strata/core/error.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace strata::core {

template <class Factory>
class NamedRegistry {
 public:
  // `kind` names what is registered in messages ("task", "model").
  explicit NamedRegistry(std::string kind) : kind_(std::move(kind)) {}

  // InternalError when `name` is empty or taken, or the factory is empty.
  void add(const std::string& name, const std::string& description, Factory factory) {
    std::lock_guard<std::mutex> lock(mutex_);
    STRATA_CHECK(!name.empty() && factory, "register_{}: a {} needs a name and a factory", kind_, kind_);
    STRATA_CHECK(entries_.count(name) == 0, "register_{}: a {} named '{}' is already registered", kind_, kind_, name);
    entries_.emplace(name, Entry{description, std::move(factory)});
  }

  bool has(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return entries_.count(name) > 0;
  }

  // The factory of `name` (a copy: call it outside the lock, since a factory may look
  // up others); a ConfigError naming the registered ones otherwise.
  Factory find(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = entries_.find(name);
    if (it == entries_.end()) {
      std::vector<std::string> names;
      for (const auto& [n, e] : entries_) names.push_back(n);
      STRATA_THROW(ConfigError, "no {} named '{}': the registered {}s are {}", kind_, name, kind_,
                   names.empty() ? std::string("(none)") : fmt::format("{}", fmt::join(names, ", ")));
    }
    return it->second.factory;
  }

  // "name: description" of every entry, sorted by name.
  std::vector<std::string> describe() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::string> out;
    for (const auto& [name, e] : entries_) out.push_back(fmt::format("{}: {}", name, e.description));
    return out;
  }

 private:
  struct Entry {
    std::string description;
    Factory factory;
  };
  std::string kind_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> entries_;
};

}  // namespace strata::core
