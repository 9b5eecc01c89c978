// libFuzzer harness: a recipe YAML with --set overrides, as `brats_recipe train
// --config FILE --set k=v` reads them (core::load_config<RecipeConfig>). Lines of the
// input that start with "#set " (YAML comments) are also passed as --set assignments.
// A config that loads must print (to_yaml) to a text that loads again to the same text:
// the resolved config stored in every checkpoint is read back by evaluate and predict.
#include "fuzz_input.h"

#include "brats_recipe/recipe_config.h"

#include <sstream>

namespace {

std::vector<std::string> overrides_of(const std::string& text) {
  std::vector<std::string> sets;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("#set ", 0) == 0) sets.push_back(line.substr(5));
  }
  return sets;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::InputFile input(data, size, ".yaml");
  fuzz::expect_clean_refusal([&] {
    auto config = core::load_config<recipes::RecipeConfig>(input.path(), overrides_of(text));
    const std::string printed = core::to_yaml(config);
    auto again = core::parse_config<recipes::RecipeConfig>(printed, {}, "printed config");
    if (core::to_yaml(again) != printed) {
      std::fprintf(stderr, "FUZZ FINDING: the printed config reads back differently:\n%s\n---\n%s\n", printed.c_str(),
                   core::to_yaml(again).c_str());
      std::abort();
    }
  });
  return 0;
}
