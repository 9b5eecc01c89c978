# Compiles through ccache when it is installed (Debian's `ccache`), so that a rebuild, a
# deleted build/ or a fresh clone of the same sources on the same machine reuses objects.
#
# The settings travel with the launcher (not in the user's ccache.conf), so every clone
# behaves alike:
#   - base_dir = the folder that holds the sources and the build, hash_dir off: absolute
#     paths inside it become relative, so clones at different paths share the cache;
#   - sloppiness pch_defines,time_macros: required for the precompiled torch header
#     (ccache's manual); include_file_mtime/ctime: a fresh clone's files are all "new";
#   - the cache itself stays where ccache keeps it (~/.cache/ccache, or $CCACHE_DIR),
#     outside any clone. STRATA_CCACHE=OFF turns it off;
#   - clang (the sanitizer and fuzz builds): its .pch holds the build folder's absolute
#     paths, and CMake names the PCH's header after `-Xclang -include -Xclang`, which
#     base_dir does not rewrite, so every object of a fresh clone at another path missed.
#     The PCH is compiled uncached by cmake/pch_sum.sh (STRATA_PCH_LAUNCHER, used by
#     StrataTargets.cmake), which writes a .pch.sum of its inputs' contents; ccache hashes
#     that instead of the .pch (pch_external_checksum), and StrataTargets.cmake names the
#     header by a plain `-include`, whose path base_dir rewrites.
option(STRATA_CCACHE "Compile through ccache when it is installed" ON)
find_program(STRATA_CCACHE_PROGRAM ccache)

if(STRATA_CCACHE AND STRATA_CCACHE_PROGRAM AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  # The deepest folder that holds both the sources and the build (build/ sits inside
  # the clone in scripts/lib.sh; an out-of-tree build elsewhere falls back to the sources).
  set(_base ${PROJECT_SOURCE_DIR})
  cmake_path(IS_PREFIX PROJECT_SOURCE_DIR ${PROJECT_BINARY_DIR} NORMALIZE _build_inside)
  if(NOT _build_inside)
    cmake_path(GET PROJECT_SOURCE_DIR PARENT_PATH _parent)
    cmake_path(IS_PREFIX _parent ${PROJECT_BINARY_DIR} NORMALIZE _build_beside)
    if(_build_beside AND NOT _parent STREQUAL "/")
      set(_base ${_parent})
    endif()
  endif()
  set(_clang_pch)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    set(_clang_pch CCACHE_PCH_EXTSUM=1)
    set(STRATA_PCH_LAUNCHER sh ${PROJECT_SOURCE_DIR}/cmake/pch_sum.sh ${_base})
  endif()
  set(_launcher ${CMAKE_COMMAND} -E env CCACHE_BASEDIR=${_base} CCACHE_NOHASHDIR=1
      CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
      ${_clang_pch} ${STRATA_CCACHE_PROGRAM})
  set(CMAKE_C_COMPILER_LAUNCHER ${_launcher})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${_launcher})
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${_launcher})
  message(STATUS "Strata: compiling through ${STRATA_CCACHE_PROGRAM} (base_dir ${_base})")
endif()
