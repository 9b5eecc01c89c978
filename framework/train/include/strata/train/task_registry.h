// Tasks by name: a recipe, a test or a benchmark registers a factory under a name, and
// whatever holds only the name (a config, a command line) builds the task with it. The
// engine registers nothing itself; BraTS's tasks are registered by the recipe that
// knows their config sections (recipes/brats_recipe/setup.cpp).
//
// Registration is explicit (call register_task before make_task, e.g. once from main
// or a std::call_once): a static registrar in a static library would be dropped by the
// linker when nothing else references its object file. Thread-safe.
#pragma once

#include "strata/train/task.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace strata::train {

// What a factory is given: the run's whole resolved config; the task reads its own
// sections from it and reports bad values as a ConfigError naming the key.
struct TaskArgs {
  std::string config_yaml;
};
using TaskFactory = std::function<std::shared_ptr<Task>(const TaskArgs&)>;

// Registers `factory` under `name`; InternalError when the name is taken.
void register_task(const std::string& name, const std::string& description, TaskFactory factory);
// Builds the task registered as `name`; ConfigError naming the registered ones otherwise.
std::shared_ptr<Task> make_task(const std::string& name, const TaskArgs& args);
bool has_task(const std::string& name);
// "name: description" of every registered task, sorted by name.
std::vector<std::string> task_names();

}  // namespace strata::train
