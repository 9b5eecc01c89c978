// Origin suffix of Strata errors: file:line, rank and host (see error.h).
#include "strata/core/error.h"

#include "strata/core/log.h"

#include <cstring>

namespace strata::core::detail {

std::string error_origin(const char* file, int line) {
  const char* base = std::strrchr(file, '/');
  base = base ? base + 1 : file;
  const LogIdentity& id = log_identity();
  if (!id.group.empty()) {
    return fmt::format(" ({}:{}, {}, rank {}/{} on {})", base, line, id.group, id.rank, id.size, id.host);
  }
  if (id.size > 1) {
    return fmt::format(" ({}:{}, rank {}/{} on {})", base, line, id.rank, id.size, id.host);
  }
  return fmt::format(" ({}:{})", base, line);
}

}  // namespace strata::core::detail
