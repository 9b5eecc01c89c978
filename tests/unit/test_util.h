// Helpers shared by Strata's unit tests, whatever the module.
#pragma once

#include "strata/core/error.h"

#include <string>

namespace strata::test {

// The message of the core::Error that `f` throws, or "" when it throws none.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const core::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace strata::test
