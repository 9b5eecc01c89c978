// The environment switches of strata_nn's CPU fast paths (docs/environment.md): NAME=0
// turns one off, for measuring against ATen's own kernels.
#pragma once

#include <cstdlib>
#include <cstring>

namespace strata::nn::detail {

// False where the variable is "0"; read it once (a function-local static) per switch.
inline bool switched_on(const char* name) {
  const char* v = std::getenv(name);
  return !(v && std::strcmp(v, "0") == 0);
}

}  // namespace strata::nn::detail
