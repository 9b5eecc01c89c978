# strata::torch for a CPU-only build against a libtorch that carries CUDA (PyPI's torch
# wheel) on a machine without a CUDA toolkit. torch's own config (TorchConfig.cmake ->
# Caffe2Config.cmake) stops with a fatal error there, because it must find the toolkit
# before it defines any target. Strata's CPU code needs only the CPU half of libtorch:
# libtorch_cpu and libc10, their headers, and the compile definitions torch_cpu exports
# (read from torch's own Caffe2Targets.cmake, so they follow the wheel).
#
# In: _torch_root (the folder holding lib/ and include/). Out: strata::torch, Torch_VERSION.

foreach(_lib torch_cpu c10)
  find_library(STRATA_TORCH_${_lib}_LIBRARY ${_lib} PATHS "${_torch_root}/lib" NO_DEFAULT_PATH)
  if(NOT STRATA_TORCH_${_lib}_LIBRARY)
    message(FATAL_ERROR "CPU-only build: lib${_lib}.so not found in ${_torch_root}/lib")
  endif()
endforeach()

# torch_cpu's INTERFACE_COMPILE_DEFINITIONS, as the wheel's export file states them.
set(_torch_cpu_defs "")
file(READ "${_torch_root}/share/cmake/Caffe2/Caffe2Targets.cmake" _targets)
if(_targets MATCHES "set_target_properties\\(torch_cpu PROPERTIES[^)]*INTERFACE_COMPILE_DEFINITIONS \"([^\"]*)\"")
  set(_torch_cpu_defs "${CMAKE_MATCH_1}")
endif()

set(Torch_VERSION "")
if(EXISTS "${_torch_root}/version.py")
  file(STRINGS "${_torch_root}/version.py" _line REGEX "^__version__")
  string(REGEX MATCH "'([^'+]+)" _m "${_line}")
  set(Torch_VERSION "${CMAKE_MATCH_1}")
endif()
if(Torch_VERSION VERSION_LESS 2.4)
  message(FATAL_ERROR "libtorch ${Torch_VERSION} at ${_torch_root}: Strata needs 2.4 or newer")
endif()

add_library(strata::torch INTERFACE IMPORTED)
set_target_properties(strata::torch PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${_torch_root}/include;${_torch_root}/include/torch/csrc/api/include"
  INTERFACE_COMPILE_DEFINITIONS "${_torch_cpu_defs}"
  INTERFACE_LINK_LIBRARIES "${STRATA_TORCH_torch_cpu_LIBRARY};${STRATA_TORCH_c10_LIBRARY}")
