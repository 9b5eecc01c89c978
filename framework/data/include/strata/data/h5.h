// Thin RAII layer over the HDF5 C API, shared by the slice packer (writer) and
// SliceStore (reader): owned handles, typed attribute helpers, the float16 file type,
// and the HDF5 error stack turned into text for Strata's typed errors.
//
// Thread safety: serial HDF5 keeps global state (identifier tables, free lists, the
// error stack), so every HDF5 call Strata makes runs under one process-wide lock,
// taken by constructing an h5::Lock. Debian's libhdf5 is also built thread-safe,
// which only serialises each call on its own: sequences such as "select a hyperslab,
// then read" still need the outer lock. The lock also silences HDF5's automatic
// error printing for the calling thread (error stacks are per thread), since Strata
// reports errors itself.
#pragma once

#include "strata/core/error.h"

#include <hdf5.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace strata::data::h5 {

// Holds the process-wide HDF5 lock for its lifetime (recursive: helpers nest).
class Lock {
 public:
  Lock();
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

 private:
  std::unique_lock<std::recursive_mutex> lock_;
};

// The innermost descriptions of the calling thread's HDF5 error stack
// ("Fletcher32 checksum ...; can't read data"), or "" when it is empty. Clears it.
std::string error_text();

// An owned hid_t with its close function (H5Fclose, H5Dclose, ...). Move-only.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  ~Handle() { reset(); }
  Handle(Handle&& other) noexcept : id_(other.id_), close_(other.close_) { other.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& other) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer close_ = nullptr;
};

// Wraps a freshly created or opened id; a negative id throws `ErrorType` with `what`
// and HDF5's own error text.
template <class ErrorType>
Handle make(hid_t id, Handle::Closer close, const std::string& what) {
  if (id < 0) {
    std::string why = error_text();
    throw ErrorType(why.empty() ? what : what + ": " + why);
  }
  return Handle(id, close);
}
// Throws `ErrorType` with `what` and HDF5's error text when `status` is negative.
template <class ErrorType>
void check(herr_t status, const std::string& what) {
  if (status < 0) {
    std::string why = error_text();
    throw ErrorType(why.empty() ? what : what + ": " + why);
  }
}

// The IEEE binary16 little-endian file type (HDF5 1.10 has no predefined half type).
// h5dump shows it as "16-bit little-endian floating-point". Owned by the caller.
Handle float16_type();

// `values` as fixed-length NUL-terminated strings, each (longest + 1) bytes, back to
// back: the buffer for a fixed-length string type of that size (fixed_string_type).
std::vector<char> fixed_strings(const std::vector<std::string>& values);
// That type: NUL-terminated UTF-8 strings of `longest` + 1 bytes.
Handle fixed_string_type(size_t longest);

// Attributes on a file, group or dataset (strings are written fixed-length, so they
// never live in HDF5's global heap). Writers throw IoError; readers throw
// DataError naming `where` (file and object) when the attribute is absent or of
// another type.
void write_attr(hid_t obj, const char* name, const std::string& value);
void write_attr(hid_t obj, const char* name, int64_t value);
void write_attr(hid_t obj, const char* name, double value);
void write_attr(hid_t obj, const char* name, const std::vector<std::string>& values);
void write_attr(hid_t obj, const char* name, const std::vector<int64_t>& values);

bool has_attr(hid_t obj, const char* name);
std::string read_string_attr(hid_t obj, const char* name, const std::string& where);
int64_t read_int_attr(hid_t obj, const char* name, const std::string& where);
double read_double_attr(hid_t obj, const char* name, const std::string& where);
std::vector<std::string> read_strings_attr(hid_t obj, const char* name, const std::string& where);
std::vector<int64_t> read_ints_attr(hid_t obj, const char* name, const std::string& where);

// The dimensions of a dataset's dataspace.
std::vector<hsize_t> dims_of(hid_t dataset);

// The names of a group's members, in name order; DataError naming `where` when the
// group cannot be listed.
std::vector<std::string> member_names(hid_t group, const std::string& where);

}  // namespace strata::data::h5
