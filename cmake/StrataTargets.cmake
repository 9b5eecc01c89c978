# Shared build settings for Strata targets: warnings, C++17, the torch precompiled
# header, and helpers that every module, recipe, benchmark and test uses.

add_library(strata_warnings INTERFACE)
target_compile_options(strata_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter -Winvalid-pch>
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${STRATA_WERROR}>>:-Werror>
  # In a unity build a .cpp is an included file, and gcc then flags a class of that .cpp
  # (a pimpl's Impl) with fields of the file's anonymous-namespace types, which is
  # harmless when the whole batch is one translation unit.
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CXX_COMPILER_ID:GNU>,$<BOOL:${STRATA_UNITY}>>:-Wno-subobject-linkage>)

# One precompiled <torch/torch.h>, built once and reused by every target (REUSE_FROM):
# torch's headers dominate compile time on a 2-core machine.
add_library(strata_pch STATIC ${PROJECT_SOURCE_DIR}/cmake/pch.cpp)
target_link_libraries(strata_pch PUBLIC strata::torch strata_fmt)
target_compile_features(strata_pch PUBLIC cxx_std_17)
if(STRATA_PCH)
  target_precompile_headers(strata_pch PRIVATE <torch/torch.h> <fmt/format.h> <fmt/ranges.h> <string> <vector>)
  if(STRATA_PCH_LAUNCHER)
    # clang's PCH, uncached, with the .pch.sum that ccache hashes (StrataCcache.cmake).
    set_target_properties(strata_pch PROPERTIES CXX_COMPILER_LAUNCHER "${STRATA_PCH_LAUNCHER}")
    # CMake's `-Xclang -include-pch -Xclang P.pch -Xclang -include -Xclang P` hides the
    # paths from ccache's base_dir; a plain `-include P` is rewritten, and clang's driver
    # then uses P.pch beside it, as gcc does with P.gch.
    set(CMAKE_CXX_COMPILE_OPTIONS_USE_PCH -include <PCH_HEADER>)
  endif()
endif()

function(_strata_common target)
  target_compile_features(${target} PUBLIC cxx_std_17)
  target_link_libraries(${target} PRIVATE strata_warnings)
  if(STRATA_PCH)
    # The shared PCH force-includes <torch/torch.h>, so every target sees torch's headers.
    target_link_libraries(${target} PRIVATE strata::torch strata_fmt)
    target_precompile_headers(${target} REUSE_FROM strata_pch)
  endif()
endfunction()

# strata_add_library(NAME SOURCES... ) for framework/<module>: headers under
# include/strata/<module>, sources under src/. Links are added by the caller, so
# PUBLIC/PRIVATE edges keep the module arrows pointing down.
function(strata_add_library name)
  add_library(${name} ${ARGN})
  target_include_directories(${name} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include)
  _strata_common(${name})
  add_library(strata::${name} ALIAS ${name})
endfunction()

# libtorch.so exports its own (older, statically linked) copy of std::filesystem, and
# its DT_NEEDED entry precedes libstdc++'s, so calls such as remove_all() would bind to
# torch's copy and crash. Naming libstdc++ first on every executable's link line makes
# the system's implementation the one the dynamic linker finds first.
#
# strata_add_executable(NAME [CUDA_AT_RUN_TIME] SOURCES...): CUDA_AT_RUN_TIME leaves
# libtorch_cuda out of the link (brats_recipe: it loads it when a command may use a GPU,
# comm/cuda_backend.h); every other executable links all of torch.
function(strata_add_executable name)
  cmake_parse_arguments(A "CUDA_AT_RUN_TIME" "" "" ${ARGN})
  add_executable(${name} ${A_UNPARSED_ARGUMENTS})
  _strata_common(${name})
  if(NOT A_CUDA_AT_RUN_TIME)
    target_link_libraries(${name} PRIVATE strata::torch_cuda_backend)
  endif()
  target_link_options(${name} PRIVATE "LINKER:--push-state,--no-as-needed" -lstdc++ "LINKER:--pop-state")
  if(STRATA_SANITIZE)
    # The runtimes' defaults: tests/sanitize's suppression files (cmake/StrataSanitize.cmake).
    target_sources(${name} PRIVATE ${STRATA_SANITIZER_OPTIONS_SOURCE})
  endif()
endfunction()
