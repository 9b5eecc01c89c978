# FindNIfTI: nifticlib's NIfTI-2 I/O library (reads and writes NIfTI-1 and NIfTI-2,
# .nii and .nii.gz) from Debian's libnifti2-dev.
#
# Debian's own NIFTIConfig.cmake points its imported targets at /usr/lib instead of the
# multiarch folder, so it fails; this module finds the header and libraries directly.
# Defines NIfTI_FOUND, NIfTI_INCLUDE_DIR, NIfTI_LIBRARY and the imported target
# NIfTI::nifti2 (with znz, zlib and libm as link dependencies).
find_path(NIfTI_INCLUDE_DIR nifti2_io.h PATH_SUFFIXES nifti)
find_library(NIfTI_LIBRARY NAMES nifti2)
find_library(NIfTI_ZNZ_LIBRARY NAMES znz)
find_package(ZLIB QUIET)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(NIfTI
  REQUIRED_VARS NIfTI_LIBRARY NIfTI_ZNZ_LIBRARY NIfTI_INCLUDE_DIR ZLIB_FOUND
  REASON_FAILURE_MESSAGE "install Debian's libnifti2-dev (scripts/install-deps.sh)")

if(NIfTI_FOUND AND NOT TARGET NIfTI::nifti2)
  add_library(NIfTI::znz UNKNOWN IMPORTED)
  set_target_properties(NIfTI::znz PROPERTIES IMPORTED_LOCATION "${NIfTI_ZNZ_LIBRARY}"
                        INTERFACE_LINK_LIBRARIES ZLIB::ZLIB)
  add_library(NIfTI::nifti2 UNKNOWN IMPORTED)
  set_target_properties(NIfTI::nifti2 PROPERTIES IMPORTED_LOCATION "${NIfTI_LIBRARY}"
                        INTERFACE_INCLUDE_DIRECTORIES "${NIfTI_INCLUDE_DIR}"
                        INTERFACE_LINK_LIBRARIES "NIfTI::znz;m")
endif()
mark_as_advanced(NIfTI_INCLUDE_DIR NIfTI_LIBRARY NIfTI_ZNZ_LIBRARY)
