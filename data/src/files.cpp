// remove_tree with nftw (see files.h for why not std::filesystem::remove_all).
#include "strata/dataprep/files.h"

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

namespace strata::dataprep {
namespace {

int remove_entry(const char* path, const struct stat*, int, struct FTW*) { return ::remove(path) == 0 ? 0 : -1; }

}  // namespace

bool remove_tree(const std::string& path) noexcept {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return true;  // nothing there
  // Depth first (children before their folder), without following symlinks.
  return ::nftw(path.c_str(), remove_entry, 32, FTW_DEPTH | FTW_PHYS) == 0;
}

}  // namespace strata::dataprep
