// Task-supplied names and colours of figures (style.h).
#include "strata/viz/style.h"

#include "strata/core/error.h"

namespace strata::viz {

void ClassStyle::check(std::string_view what) const {
  STRATA_CHECK_AS(InternalError,
                  names.size() >= 2 && colors.size() == names.size() && line_colors.size() == names.size(),
                  "{}: {} class names, {} colours and {} line colours (one of each per label, background first, "
                  "at least two labels)",
                  what, names.size(), colors.size(), line_colors.size());
}

}  // namespace strata::viz
