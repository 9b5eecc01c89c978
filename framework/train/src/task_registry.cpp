// Tasks by name (see task_registry.h).
#include "strata/train/task_registry.h"

#include "strata/core/registry.h"

namespace strata::train {
namespace {

core::NamedRegistry<TaskFactory>& registry() {
  static core::NamedRegistry<TaskFactory> r("task");
  return r;
}

}  // namespace

void register_task(const std::string& name, const std::string& description, TaskFactory factory) {
  registry().add(name, description, std::move(factory));
}

bool has_task(const std::string& name) { return registry().has(name); }

std::vector<std::string> task_names() { return registry().describe(); }

std::shared_ptr<Task> make_task(const std::string& name, const TaskArgs& args) {
  return registry().find(name)(args);  // outside the lock: a factory may look up other tasks
}

}  // namespace strata::train
