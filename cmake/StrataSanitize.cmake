# Sanitizer and fuzzing builds. Every target of the tree (libraries, tests, tools) gets
# the same instrumentation, so that the precompiled torch header and the objects agree.
#
#   STRATA_SANITIZE=address,undefined  ASan + UBSan (build-asan/, scripts/sanitize.sh)
#   STRATA_SANITIZE=thread             TSan (build-tsan/), for the threaded code only
#   STRATA_FUZZ=ON                     libFuzzer harnesses of tests/fuzz (build-asan/, clang,
#                                      with ASan + UBSan unless STRATA_SANITIZE says otherwise)
#
# libtorch, OpenMPI and HDF5 come prebuilt without instrumentation. ASan and UBSan only
# need their runtime loaded first, which linking every executable with -fsanitize does;
# what those libraries do (leaks at exit, races inside their thread pools) is answered by
# the suppression files of tests/sanitize, which name each library and why.
set(STRATA_SANITIZE "" CACHE STRING "Sanitizers for every target: address,undefined | thread | empty (none)")
set_property(CACHE STRATA_SANITIZE PROPERTY STRINGS "" "address,undefined" "thread")
option(STRATA_FUZZ "Build the libFuzzer harnesses of tests/fuzz (needs clang)" OFF)

if(STRATA_FUZZ AND NOT STRATA_SANITIZE)
  set(STRATA_SANITIZE "address,undefined")
endif()

if(STRATA_SANITIZE)
  if(NOT STRATA_SANITIZE MATCHES "^(address,undefined|undefined,address|address|undefined|thread)$")
    message(FATAL_ERROR "STRATA_SANITIZE='${STRATA_SANITIZE}': expected address,undefined or thread "
                        "(TSan cannot be combined with ASan)")
  endif()
  set(_san -fsanitize=${STRATA_SANITIZE})
  if(STRATA_FUZZ)
    # Objects get the fuzzer's coverage hooks; only the harnesses link libFuzzer's main.
    set(_san -fsanitize=${STRATA_SANITIZE},fuzzer-no-link)
  endif()
  # Frames for the reports' stacks; line tables only (-g1) keep the objects and the
  # compiler cache small. -O1 (after the build type's -O3, so it wins): the sanitizers'
  # usual level, quicker to compile than -O3 and still quick to run.
  add_compile_options(${_san} -O1 -fno-omit-frame-pointer -g1)
  add_link_options(${_san})
  # Every executable carries the runtimes' default options (strata_add_executable).
  set(STRATA_SUPPRESSIONS_DIR ${PROJECT_SOURCE_DIR}/tests/sanitize)
  set(STRATA_SANITIZER_OPTIONS_SOURCE ${PROJECT_BINARY_DIR}/sanitizer_options.cpp)
  configure_file(${STRATA_SUPPRESSIONS_DIR}/sanitizer_options.cpp.in ${STRATA_SANITIZER_OPTIONS_SOURCE} @ONLY)
  message(STATUS "Strata: sanitizers ${STRATA_SANITIZE} (tests/sanitize/*.supp name what is suppressed)")
endif()

if(STRATA_FUZZ AND NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "STRATA_FUZZ=ON needs clang (libFuzzer): configure with CC=clang-14 CXX=clang++-14 "
                      "(scripts/fuzz.sh does), not ${CMAKE_CXX_COMPILER_ID}")
endif()
