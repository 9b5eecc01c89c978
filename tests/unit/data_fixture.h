// Shared by the data tests: a private temporary folder, a tiny synthetic BraTS dataset
// packed once per test binary, and helpers that damage packed files the way disks and
// truncated copies do.
#pragma once

#include "strata/dataprep/packer.h"
#include "test_util.h"

#include <hdf5.h>

#include <cstdint>
#include <string>

namespace strata::test {

// A fresh folder under the system temp dir, removed when the test binary exits.
const std::string& temp_root();
// A new empty folder under temp_root().
std::string temp_dir(const std::string& name);

// Six synthetic cases of 48 x 48 x 24 voxels (synth seed 11), written once.
const std::string& tiny_cases();
// tiny_cases() packed at 32 x 32 (val fraction 0.34, keep_empty 0.5, seed 3), once.
const std::string& tiny_packed();
// The options tiny_packed() used, with `out_path` set to `out`.
dataprep::PackOptions tiny_pack_options(const std::string& out);

// Copies `from` to `to` (overwriting).
void copy_file(const std::string& from, const std::string& to);
// The absolute file offset of slice `slice`'s chunk in dataset `dataset`.
uint64_t chunk_offset(const std::string& path, const char* dataset, int64_t slice);
// XORs the byte at `offset` with 0xff.
void flip_byte(const std::string& path, uint64_t offset);
// Overwrites a root integer attribute (for a "format version 4" file).
void set_int_attr(const std::string& path, const char* name, int64_t value);
// tiny_cases() packed with 3 folds (fold 1 in val) and one case held out as test, once.
const std::string& tiny_folds_packed();
// Overwrites the whole of dataset `name` with `data` (of `mem_type`); with `reseal`, then
// recomputes the root `metadata_checksum`, as a writer with a bug (not a disk) would leave it.
void overwrite_dataset(const std::string& path, const char* name, hid_t mem_type, const void* data, bool reseal);
// Turns a packed file into a format version 2 file: /case_names and the root's string
// attributes as variable-length strings (in HDF5's global heap, /case_names contiguous),
// no metadata checksum.
void make_version2(const std::string& path);
// Turns a packed file into a format version 1 file (version 2 without case_* datasets).
void make_version1(const std::string& path);
// The absolute file offset of a contiguous dataset's data (H5Dget_offset).
uint64_t dataset_offset(const std::string& path, const char* dataset);
// The offset of the first occurrence of `bytes` at or after `from` in the file (a
// test fails if absent).
uint64_t find_bytes(const std::string& path, const std::string& bytes, uint64_t from = 0);
// Overwrites the byte at `offset`.
void set_byte(const std::string& path, uint64_t offset, unsigned char value);
// The offset of the chunk-index key (version 1 B-tree) of /`dataset` slice `slice`:
// {uint32 chunk bytes, uint32 filter mask, uint64 element offsets [rank + 1]}.
uint64_t chunk_key_offset(const std::string& path, const char* dataset, int64_t slice);

}  // namespace strata::test
