// Cross-section rules of a recipe's config (see recipe_config.h).
#include "brats_recipe/recipe_config.h"

#include "strata/core/error.h"

namespace strata::recipes {

void RecipeConfig::validate() const {
  // float16 images reach the first convolution as they are: only autocast (a GPU run
  // with fp16 or bf16) makes the weights meet them in half precision. The trainer and
  // the evaluator check the autocast they resolved (train.amp, eval.amp) at start-up.
  if (data.image_dtype == "float16") {
    if (run.device == "cpu") {
      throw core::ConfigError(
          "'data.image_dtype' = float16 needs a GPU: 'run.device' is cpu, where autocast is off. Set "
          "data.image_dtype to float32 for a CPU run");
    }
  }
}

}  // namespace strata::recipes
