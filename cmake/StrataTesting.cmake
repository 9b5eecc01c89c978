# Test registration helpers. Labels: unit (one process), dist (under mpirun), e2e (the
# CLI), gpu (needs a CUDA device; the binaries GTEST_SKIP without one), slurm, deps.
#
# Skips are never passes: every gtest binary exits 77 when all its tests were skipped
# (tests/common/gtest_status.h), every test script exits 77 with a "SKIPPED: reason" line
# when it cannot run here, and every ctest entry has SKIP_RETURN_CODE 77, so ctest reports
# them as skipped. scripts/test.sh lists the skips and fails on those STRATA_REQUIRE names.
find_package(GTest REQUIRED)
set(STRATA_SKIP_CODE 77)

# A Python with torch, for tests that run PyTorch (the golden file): scripts/lib.sh passes
# the one install-deps set up; else python3 when it imports torch.
set(STRATA_PYTHON "" CACHE FILEPATH "Python interpreter with torch, for the tests that run PyTorch")
if(NOT STRATA_PYTHON)
  find_program(_strata_python3 python3)
  if(_strata_python3)
    execute_process(COMMAND ${_strata_python3} -c "import torch" RESULT_VARIABLE _no_torch OUTPUT_QUIET ERROR_QUIET)
    if(_no_torch EQUAL 0)
      set(STRATA_PYTHON ${_strata_python3} CACHE FILEPATH "Python interpreter with torch" FORCE)
    endif()
  endif()
endif()

# The gtest main of one-process tests: skip reasons, and exit 77 when all were skipped.
add_library(strata_gtest_main STATIC ${PROJECT_SOURCE_DIR}/tests/common/gtest_main.cpp)
target_link_libraries(strata_gtest_main PUBLIC GTest::gtest)
target_compile_features(strata_gtest_main PUBLIC cxx_std_17)

# OpenMPI refuses to run as root and to place more ranks than cores unless told; CI
# runs as root on 2 cores. Those flags live here, not in developers' heads.
execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE _mpiexec_version
                ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
set(STRATA_MPIEXEC_FLAGS "")
set(STRATA_MPI_TEST_ENV "")
if(_mpiexec_version MATCHES "Open MPI|OpenRTE")
  list(APPEND STRATA_MPIEXEC_FLAGS --oversubscribe --bind-to none)
  list(APPEND STRATA_MPI_TEST_ENV OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
       OMPI_MCA_rmaps_base_oversubscribe=1)
endif()
set(STRATA_DIST_TIMEOUT 300 CACHE STRING "ctest TIMEOUT (s) of each dist test: a hang fails, never blocks")

# strata_add_gtest(NAME [NO_MAIN] [CUDA_AT_RUN_TIME] SOURCES... LIBS ... LABELS ...): one
# gtest binary in build/bin (CUDA_AT_RUN_TIME: linked as brats_recipe, see strata_add_executable).
function(strata_add_gtest name)
  cmake_parse_arguments(A "NO_MAIN;CUDA_AT_RUN_TIME" "" "SOURCES;LIBS;LABELS" ${ARGN})
  set(_lazy "")
  if(A_CUDA_AT_RUN_TIME)
    set(_lazy CUDA_AT_RUN_TIME)
  endif()
  strata_add_executable(${name} ${_lazy} ${A_SOURCES})
  if(A_NO_MAIN)
    target_link_libraries(${name} PRIVATE ${A_LIBS} GTest::gtest)
  else()
    target_link_libraries(${name} PRIVATE ${A_LIBS} GTest::gtest strata_gtest_main)
  endif()
endfunction()

# strata_add_unit_test(NAME [CUDA_AT_RUN_TIME] SOURCES... LIBS ... [LABELS ...]): runs in one process.
function(strata_add_unit_test name)
  cmake_parse_arguments(A "CUDA_AT_RUN_TIME" "" "SOURCES;LIBS;LABELS" ${ARGN})
  set(_lazy "")
  if(A_CUDA_AT_RUN_TIME)
    set(_lazy CUDA_AT_RUN_TIME)
  endif()
  strata_add_gtest(${name} ${_lazy} SOURCES ${A_SOURCES} LIBS ${A_LIBS})
  if(NOT A_LABELS)
    set(A_LABELS unit)
  endif()
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS "${A_LABELS}" TIMEOUT 600 SKIP_RETURN_CODE ${STRATA_SKIP_CODE})
  set_property(GLOBAL APPEND PROPERTY STRATA_UNIT_TEST_TARGETS ${name})
endfunction()

# strata_mpiexec_command(OUT np) : the launcher prefix for np ranks, from FindMPI.
function(strata_mpiexec_command out np)
  set(${out} ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} ${STRATA_MPIEXEC_FLAGS}
      ${MPIEXEC_PREFLAGS} PARENT_SCOPE)
endfunction()

# strata_add_mpi_test(TARGET np [ARGS ...] [LABELS ...]): registers TARGET (built with
# tests/dist's own gtest main) as test TARGET_np<np> under mpirun, label `dist`.
function(strata_add_mpi_test target np)
  cmake_parse_arguments(A "" "" "ARGS;LABELS" ${ARGN})
  if(NOT A_LABELS)
    set(A_LABELS dist)
  endif()
  strata_mpiexec_command(_launch ${np})
  add_test(NAME ${target}_np${np}
           COMMAND ${_launch} $<TARGET_FILE:${target}> ${MPIEXEC_POSTFLAGS} ${A_ARGS})
  set_tests_properties(${target}_np${np} PROPERTIES LABELS "${A_LABELS}" PROCESSORS ${np}
                       TIMEOUT ${STRATA_DIST_TIMEOUT} ENVIRONMENT "${STRATA_MPI_TEST_ENV}"
                       SKIP_RETURN_CODE ${STRATA_SKIP_CODE})
endfunction()

# Another CPU, emulated. Float kernels differ by CPU (ATen and oneDNN dispatch on the ISA),
# so a test that compares against committed data must hold on every CPU within its
# tolerance. Such tests run once more per variant here, with ATen held to that code path
# (ATEN_CPU_CAPABILITY) and oneDNN to the matching ISA (ONEDNN_MAX_CPU_ISA): `default` is a
# plain x86-64 machine, `avx2` one without AVX-512.
set(STRATA_ISA_VARIANTS default avx2 CACHE STRING "Emulated CPU code paths the golden tests run again under")
function(strata_isa_env out isa)
  if(isa STREQUAL "default")
    set(_onednn SSE41)
  elseif(isa STREQUAL "avx2")
    set(_onednn AVX2)
  else()
    message(FATAL_ERROR "STRATA_ISA_VARIANTS: unknown variant '${isa}' (default, avx2)")
  endif()
  set(${out} "ATEN_CPU_CAPABILITY=${isa};ONEDNN_MAX_CPU_ISA=${_onednn}" PARENT_SCOPE)
endfunction()
