// File-system helpers for dataset preparation.
//
// remove_tree exists because std::filesystem::remove_all is unsafe next to the PyPI
// torch wheel: its libtorch.so exports its own copy of libstdc++'s filesystem
// operations (built with GCC 13), which wins symbol resolution over Debian 12's
// libstdc++ (GCC 12) when libtorch comes first in the executable's DT_NEEDED list. Its
// remove_all calls recursive_directory_iterator::__erase, a symbol GCC 12's libstdc++
// lacks, through a null weak reference: a segfault as soon as a folder has entries.
// Strata's own executables name libstdc++ first (strata_add_executable in
// cmake/StrataTargets.cmake), which avoids it; this library keeps the nftw version so it
// is also safe in executables linked another way.
#pragma once

#include <string>

namespace strata::dataprep {

// Removes `path` and everything under it (files, folders, symlinks themselves, never
// their targets). A missing path is not an error; returns false when something could
// not be removed.
bool remove_tree(const std::string& path) noexcept;

}  // namespace strata::dataprep
