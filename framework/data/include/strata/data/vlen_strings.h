// Reads a dataset of variable-length strings (the /case_names of format versions 1
// and 2) from the file's own bytes instead of through H5Dread. HDF5 1.10 follows the
// on-disk references into its global heap unchecked: one damaged byte in a reference
// or in a heap collection made H5Dread crash inside libhdf5 (H5HG_read), or quietly
// give one case another's name. Here every reference and every heap collection it
// points into is checked against the file format (global heap collection "GCOL"
// version 1, 8-byte addresses and lengths) before a byte of it is used; a collection
// that passes is also safe for HDF5 to load later (the string attributes that share it).
//
// Contract: `dataset` is a 1-D, contiguous dataset of variable-length strings in the
// file at `path` (`file_bytes` long). Damage is a DataError naming the file, the
// dataset and the entry. Call under the HDF5 lock (h5.h).
//
// The variable-length string attributes of those versions (format, modalities, tool,
// ...) point into the same heap, and H5Aread followed a damaged reference as blindly
// (a crash in H5HG_read, or a 4 GiB allocation in H5T__conv_vlen for a damaged
// length). read_vlen_strings_attr reads them the same way: it finds the attribute's
// references among the messages of its object's header (version 1, the only one
// format 1-2 files hold) and checks each as above; errors name `where` (the file) and
// the attribute.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace strata::data {

std::vector<std::string> read_vlen_strings(hid_t dataset, const std::string& path, const char* name,
                                           int64_t file_bytes);

// The `count` strings of variable-length string attribute `name` of `obj`.
std::vector<std::string> read_vlen_strings_attr(hid_t obj, const char* name, size_t count, const std::string& where);

}  // namespace strata::data
