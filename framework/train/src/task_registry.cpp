// Tasks by name (see task_registry.h).
#include "strata/train/task_registry.h"

#include "strata/core/error.h"

#include <fmt/format.h>

#include <map>
#include <mutex>

namespace strata::train {
namespace {

struct Entry {
  std::string description;
  TaskFactory factory;
};

struct Registry {
  std::mutex mutex;
  std::map<std::string, Entry> tasks;
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

void register_task(const std::string& name, const std::string& description, TaskFactory factory) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  STRATA_CHECK(!name.empty() && factory, "register_task: a task needs a name and a factory");
  STRATA_CHECK(r.tasks.count(name) == 0, "register_task: a task named '{}' is already registered", name);
  r.tasks.emplace(name, Entry{description, std::move(factory)});
}

bool has_task(const std::string& name) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.tasks.count(name) > 0;
}

std::vector<std::string> task_names() {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<std::string> out;
  for (const auto& [name, e] : r.tasks) out.push_back(fmt::format("{}: {}", name, e.description));
  return out;
}

std::shared_ptr<Task> make_task(const std::string& name, const TaskArgs& args) {
  TaskFactory factory;
  {
    auto& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    auto it = r.tasks.find(name);
    if (it == r.tasks.end()) {
      std::vector<std::string> names;
      for (const auto& [n, e] : r.tasks) names.push_back(n);
      STRATA_THROW(ConfigError, "no task named '{}': the registered tasks are {}", name,
                   names.empty() ? std::string("(none)") : fmt::format("{}", fmt::join(names, ", ")));
    }
    factory = it->second.factory;
  }
  return factory(args);  // outside the lock: a factory may look up other tasks
}

}  // namespace strata::train
