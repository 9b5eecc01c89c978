// The packed file's metadata checksum (format version 3, data/FORMAT.md): CRC-32
// (zlib) over every object of the file except the slice data (/images and /labels,
// which carry Fletcher-32 per chunk): each object's path, each attribute's name, type
// and value, and each dataset's type, shape and stored bytes, in name order. In a file
// of packed volumes the datasets under /cases (images, labels, class locations, with
// Fletcher-32 per chunk) are left out the same way; their paths and attributes count. The packer
// stores it in the root attribute `metadata_checksum`; SliceStore recomputes it on
// open, so a changed case name, split, geometry value or attribute is an error.
//
// Contract: the file holds fixed-size types only (version 3 has no variable-length
// strings); a variable-length type is a DataError. Call under the HDF5 lock (h5.h).
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>

namespace strata::data {

// The checksum of `file`'s metadata as it is now; `where` names the file in errors
// (a failed read names the object, as HDF5 reports it).
uint32_t metadata_checksum(hid_t file, const std::string& where);

}  // namespace strata::data
