# Finds every external dependency once, so module CMakeLists only link imported targets.
#
# libtorch: any 2.4+ build found through CMAKE_PREFIX_PATH (the pip wheel's
# `torch.utils.cmake_prefix_path`, or an unzipped libtorch). When it has CUDA, NCCL
# is required (cmake/FindNCCL.cmake) and the CUDA toolkit that torch's CMake found
# must have the same major version that torch was built with.
#
# STRATA_CUDA (AUTO, ON, OFF) picks the build. AUTO builds for CUDA when libtorch has CUDA
# and a CUDA toolkit (nvcc) is found, and CPU-only otherwise: PyPI's torch wheel carries
# CUDA, but torch's own CMake config refuses to load it without a toolkit, and a new
# machine has none (install-deps does not install NVIDIA's). The CPU-only build then links
# the wheel's CPU libraries directly (cmake/StrataTorchCpu.cmake).
set(STRATA_CUDA AUTO CACHE STRING "CUDA build: AUTO (when libtorch has CUDA and a toolkit is found), ON or OFF")
set_property(CACHE STRATA_CUDA PROPERTY STRINGS AUTO ON OFF)
find_path(STRATA_TORCH_CONFIG_DIR TorchConfig.cmake PATH_SUFFIXES Torch share/cmake/Torch
          DOC "libtorch's CMake config folder")
if(NOT STRATA_TORCH_CONFIG_DIR)
  message(FATAL_ERROR "libtorch not found: set CMAKE_PREFIX_PATH to torch.utils.cmake_prefix_path "
                      "(scripts/install-deps.sh installs torch==2.11.0; scripts/lib.sh passes it)")
endif()
get_filename_component(_torch_root "${STRATA_TORCH_CONFIG_DIR}/../../.." ABSOLUTE)
set(_torch_has_cuda OFF)
if(EXISTS "${_torch_root}/lib/libtorch_cuda.so")
  set(_torch_has_cuda ON)
endif()
find_program(STRATA_NVCC nvcc HINTS ${CUDAToolkit_ROOT} ENV CUDAToolkit_ROOT ENV CUDA_HOME ENV CUDA_PATH
             /usr/local/cuda PATH_SUFFIXES bin DOC "nvcc of the CUDA toolkit for a CUDA build")
if(_torch_has_cuda AND NOT STRATA_NVCC AND STRATA_CUDA STREQUAL "ON")
  message(FATAL_ERROR "STRATA_CUDA=ON but no CUDA toolkit (nvcc) was found: install one of the CUDA major "
                      "version torch was built with, set CUDAToolkit_ROOT, or configure with -DSTRATA_CUDA=AUTO")
endif()
if(_torch_has_cuda AND (STRATA_CUDA STREQUAL "OFF" OR NOT STRATA_NVCC))
  include(StrataTorchCpu)   # strata::torch from the wheel's CPU libraries
  set(_strata_cpu_only_reason "STRATA_CUDA=${STRATA_CUDA}, nvcc: ${STRATA_NVCC}")
  message(STATUS "Strata: CPU-only build against ${_torch_root} (${_strata_cpu_only_reason})")
else()
  find_package(Torch 2.4 REQUIRED)
endif()
find_package(MPI REQUIRED COMPONENTS C CXX)
find_package(HDF5 REQUIRED COMPONENTS C CXX)
find_package(ZLIB REQUIRED)  # crc32 for the packed file's metadata checksum
# Checkpoints are zips: their records are checked against their CRC-32s. Through
# pkg-config: Debian's libzip CMake config names tools (zipcmp) that libzip-dev lacks.
find_package(PkgConfig REQUIRED)
pkg_check_modules(LIBZIP REQUIRED IMPORTED_TARGET libzip)
find_package(yaml-cpp REQUIRED)
find_package(fmt REQUIRED)
find_package(CLI11 REQUIRED)
find_package(Threads REQUIRED)
find_package(NIfTI REQUIRED)  # cmake/FindNIfTI.cmake: nifticlib from libnifti2-dev

# libtorch ships its own fmt headers (fmt 12 in torch 2.11) inside its include folder,
# which the compiler would pick over Debian's /usr/include/fmt while the link uses
# Debian's libfmt: mismatched symbols. strata_fmt puts Debian's headers first through a
# build-tree folder that holds only a link to them, added with -I (torch's folders are
# -isystem, searched later). torch.h itself does not include fmt.
get_target_property(_fmt_inc fmt::fmt INTERFACE_INCLUDE_DIRECTORIES)
find_path(STRATA_FMT_INCLUDE_DIR fmt/format.h HINTS ${_fmt_inc} NO_CMAKE_PATH NO_CMAKE_ENVIRONMENT_PATH)
set(_fmt_shim ${PROJECT_BINARY_DIR}/fmt-shim)
file(MAKE_DIRECTORY ${_fmt_shim})
file(CREATE_LINK ${STRATA_FMT_INCLUDE_DIR}/fmt ${_fmt_shim}/fmt SYMBOLIC)
add_library(strata_fmt INTERFACE)
target_include_directories(strata_fmt INTERFACE ${_fmt_shim})
target_link_libraries(strata_fmt INTERFACE fmt::fmt)

# strata::torch is what Strata's code compiles and links against. In a CUDA build that is
# libtorch_cpu, libc10 and libc10_cuda (streams, guards, the caching allocator; small), not
# libtorch_cuda: that library and the CUDA libraries it needs (cuDNN, cuBLAS, cuFFT,
# NCCL, ...) are loaded at run time by what may use a GPU (comm/cuda_backend.h), so that
# a command that needs no device starts without them. strata::torch_cuda_backend links
# all of torch as torch's config states it (torch_cuda forced in, so its kernels
# register at start-up): every executable but brats_recipe takes it
# (strata_add_executable).
add_library(strata::torch_cuda_backend INTERFACE IMPORTED)
if(NOT TARGET strata::torch)
  add_library(strata::torch INTERFACE IMPORTED)
  if(TARGET torch_cuda AND NOT _strata_cpu_only_reason)
    set_target_properties(strata::torch PROPERTIES INTERFACE_LINK_LIBRARIES "torch_cpu_library;c10_cuda;c10"
      INTERFACE_INCLUDE_DIRECTORIES "${TORCH_INCLUDE_DIRS}"
      INTERFACE_COMPILE_DEFINITIONS "$<TARGET_PROPERTY:torch_cuda,INTERFACE_COMPILE_DEFINITIONS>")
    set_target_properties(strata::torch_cuda_backend PROPERTIES INTERFACE_LINK_LIBRARIES "${TORCH_LIBRARIES}")
  else()
    set_target_properties(strata::torch PROPERTIES INTERFACE_LINK_LIBRARIES "${TORCH_LIBRARIES}")
  endif()
  if(TORCH_CXX_FLAGS)
    separate_arguments(_strata_torch_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
    set_target_properties(strata::torch PROPERTIES INTERFACE_COMPILE_OPTIONS "${_strata_torch_flags}")
  endif()
endif()

# Does this libtorch carry CUDA? torch's config defines the torch_cuda target then.
set(STRATA_WITH_CUDA OFF)
if(NOT _strata_cpu_only_reason AND (TARGET torch_cuda OR TORCH_CUDA_LIBRARIES))
  set(STRATA_WITH_CUDA ON)
endif()

# The CUDA version torch was built with: version.py in a wheel, build-version in an
# unzipped libtorch ("2.11.0+cu130").
function(strata_torch_cuda_version out)
  set(_ver "")
  get_filename_component(_torch_root "${Torch_DIR}/../../.." ABSOLUTE)
  if(EXISTS "${_torch_root}/version.py")
    file(STRINGS "${_torch_root}/version.py" _line REGEX "^cuda")
    string(REGEX MATCH "'([0-9]+\\.[0-9]+)'" _m "${_line}")
    set(_ver "${CMAKE_MATCH_1}")
  elseif(EXISTS "${_torch_root}/build-version")
    file(READ "${_torch_root}/build-version" _line)
    if(_line MATCHES "\\+cu([0-9]+)([0-9])")
      set(_ver "${CMAKE_MATCH_1}.${CMAKE_MATCH_2}")
    endif()
  endif()
  set(${out} "${_ver}" PARENT_SCOPE)
endfunction()

set(STRATA_WITH_NCCL OFF)
if(STRATA_WITH_CUDA)
  strata_torch_cuda_version(STRATA_TORCH_CUDA_VERSION)
  if(STRATA_TORCH_CUDA_VERSION AND CUDAToolkit_VERSION_MAJOR)
    string(REGEX MATCH "^[0-9]+" _torch_cuda_major "${STRATA_TORCH_CUDA_VERSION}")
    if(NOT _torch_cuda_major STREQUAL CUDAToolkit_VERSION_MAJOR)
      message(FATAL_ERROR
        "libtorch was built with CUDA ${STRATA_TORCH_CUDA_VERSION} but the CUDA toolkit found is "
        "${CUDAToolkit_VERSION} (${CUDAToolkit_LIBRARY_ROOT}). Mixing CUDA major versions breaks at "
        "link or run time. Point -DCUDAToolkit_ROOT at a toolkit of CUDA ${_torch_cuda_major}.x, or "
        "install the torch build for CUDA ${CUDAToolkit_VERSION_MAJOR} (see README, 'Another libtorch').")
    endif()
  endif()
  message(STATUS "Strata: torch CUDA ${STRATA_TORCH_CUDA_VERSION}, toolkit ${CUDAToolkit_VERSION}")
  find_package(NCCL REQUIRED)
  set(STRATA_WITH_NCCL ON)
endif()
