// RAII handles, attribute helpers and error text for the HDF5 C API (see h5.h).
#include "strata/data/h5.h"

#include "strata/data/vlen_strings.h"

#include <algorithm>

namespace strata::data::h5 {

using core::DataError;
using core::IoError;

namespace {

std::recursive_mutex& global_mutex() {
  static std::recursive_mutex mutex;
  return mutex;
}

herr_t collect_error(unsigned /*n*/, const H5E_error2_t* err, void* data) {
  auto* out = static_cast<std::vector<std::string>*>(data);
  if (err->desc && *err->desc) {
    std::string desc = err->desc;
    if (std::find(out->begin(), out->end(), desc) == out->end()) out->push_back(desc);
  }
  return 0;
}

Handle scalar_space() { return make<IoError>(H5Screate(H5S_SCALAR), H5Sclose, "H5Screate"); }

Handle vector_space(size_t n) {
  hsize_t dims[1] = {static_cast<hsize_t>(n)};
  return make<IoError>(H5Screate_simple(1, dims, nullptr), H5Sclose, "H5Screate_simple");
}

void write_attr_raw(hid_t obj, const char* name, hid_t type, const Handle& space, const void* data) {
  if (H5Aexists(obj, name) > 0) check<IoError>(H5Adelete(obj, name), fmt::format("replacing attribute '{}'", name));
  Handle attr = make<IoError>(H5Acreate2(obj, name, type, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
                              fmt::format("creating attribute '{}'", name));
  check<IoError>(H5Awrite(attr.get(), type, data), fmt::format("writing attribute '{}'", name));
}

// Opens attribute `name`, checking that its type has class `cls`; returns it and its
// element count.
Handle open_attr(hid_t obj, const char* name, H5T_class_t cls, const std::string& where, size_t* count) {
  if (H5Aexists(obj, name) <= 0) {
    error_text();
    STRATA_THROW(DataError, "{}: attribute '{}' is missing", where, name);
  }
  Handle attr = make<DataError>(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose,
                                fmt::format("{}: cannot open attribute '{}'", where, name));
  Handle type = make<DataError>(H5Aget_type(attr.get()), H5Tclose, fmt::format("{}: attribute '{}'", where, name));
  if (H5Tget_class(type.get()) != cls) {
    STRATA_THROW(DataError, "{}: attribute '{}' has an unexpected type", where, name);
  }
  Handle space = make<DataError>(H5Aget_space(attr.get()), H5Sclose, fmt::format("{}: attribute '{}'", where, name));
  hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 0) STRATA_THROW(DataError, "{}: attribute '{}' has no valid shape", where, name);
  *count = static_cast<size_t>(n);
  return attr;
}

template <class T>
std::vector<T> read_numeric(hid_t obj, const char* name, H5T_class_t cls, hid_t mem_type, const std::string& where) {
  size_t n = 0;
  Handle attr = open_attr(obj, name, cls, where, &n);
  std::vector<T> out(n);
  check<DataError>(H5Aread(attr.get(), mem_type, out.data()), fmt::format("{}: reading attribute '{}'", where, name));
  return out;
}

}  // namespace

Lock::Lock() : lock_(global_mutex()) {
  // Error stacks and their printing are per thread in a thread-safe HDF5: silence
  // automatic printing once in every thread that calls HDF5 through Strata.
  thread_local bool silenced = false;
  if (!silenced) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    silenced = true;
  }
}

std::string error_text() {
  std::vector<std::string> parts;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect_error, &parts);
  H5Eclear2(H5E_DEFAULT);
  // The innermost record says what went wrong; the outermost what was being done.
  if (parts.size() > 2) parts = {parts.front(), parts.back()};
  return fmt::format("{}", fmt::join(parts, "; "));
}

Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    reset();
    id_ = other.id_;
    close_ = other.close_;
    other.id_ = H5I_INVALID_HID;
  }
  return *this;
}

void Handle::reset() {
  if (id_ >= 0 && close_) close_(id_);
  id_ = H5I_INVALID_HID;
}

// A fixed-length, NUL-terminated UTF-8 string type that holds `longest` bytes. String
// attributes are written fixed-length so that they live in their object header rather
// than in HDF5's global heap (format version 3, FORMAT.md).
Handle fixed_string_type(size_t longest) {
  Handle type = make<IoError>(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy");
  check<IoError>(H5Tset_size(type.get(), longest + 1), "H5Tset_size");
  check<IoError>(H5Tset_strpad(type.get(), H5T_STR_NULLTERM), "H5Tset_strpad");
  check<IoError>(H5Tset_cset(type.get(), H5T_CSET_UTF8), "H5Tset_cset");
  return type;
}

Handle float16_type() {
  Handle type = make<IoError>(H5Tcopy(H5T_IEEE_F32LE), H5Tclose, "H5Tcopy");
  // binary16: sign at bit 15, 5 exponent bits at 10, 10 mantissa bits at 0, bias 15.
  check<IoError>(H5Tset_fields(type.get(), 15, 10, 5, 0, 10), "H5Tset_fields");
  check<IoError>(H5Tset_size(type.get(), 2), "H5Tset_size");
  check<IoError>(H5Tset_ebias(type.get(), 15), "H5Tset_ebias");
  check<IoError>(H5Tset_precision(type.get(), 16), "H5Tset_precision");
  return type;
}

void write_attr(hid_t obj, const char* name, const std::string& value) {
  Handle type = fixed_string_type(value.size());
  write_attr_raw(obj, name, type.get(), scalar_space(), value.c_str());
}

void write_attr(hid_t obj, const char* name, int64_t value) {
  write_attr_raw(obj, name, H5T_STD_I64LE, scalar_space(), &value);
}

void write_attr(hid_t obj, const char* name, double value) {
  write_attr_raw(obj, name, H5T_IEEE_F64LE, scalar_space(), &value);
}

void write_attr(hid_t obj, const char* name, const std::vector<std::string>& values) {
  std::vector<char> flat = fixed_strings(values);
  const size_t width = flat.size() / std::max<size_t>(values.size(), 1);  // longest + 1
  Handle type = fixed_string_type(width - 1);
  write_attr_raw(obj, name, type.get(), vector_space(values.size()), flat.data());
}

std::vector<char> fixed_strings(const std::vector<std::string>& values) {
  size_t longest = 0;
  for (const auto& v : values) longest = std::max(longest, v.size());
  std::vector<char> flat(std::max<size_t>(values.size(), 1) * (longest + 1), '\0');
  for (size_t i = 0; i < values.size(); ++i) std::copy(values[i].begin(), values[i].end(), flat.begin() + i * (longest + 1));
  return flat;
}

void write_attr(hid_t obj, const char* name, const std::vector<int64_t>& values) {
  write_attr_raw(obj, name, H5T_STD_I64LE, vector_space(values.size()), values.data());
}

bool has_attr(hid_t obj, const char* name) {
  htri_t exists = H5Aexists(obj, name);
  if (exists < 0) error_text();
  return exists > 0;
}

std::vector<std::string> read_strings_attr(hid_t obj, const char* name, const std::string& where) {
  size_t n = 0;
  Handle attr = open_attr(obj, name, H5T_STRING, where, &n);
  Handle file_type = make<DataError>(H5Aget_type(attr.get()), H5Tclose, where);
  if (H5Tis_variable_str(file_type.get()) > 0) {
    return read_vlen_strings_attr(obj, name, n, where);  // never H5Aread: see vlen_strings.h
  }
  size_t len = H5Tget_size(file_type.get());
  std::vector<char> buf(n * len + 1, '\0');
  check<DataError>(H5Aread(attr.get(), file_type.get(), buf.data()), fmt::format("{}: reading attribute '{}'", where, name));
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) {
    std::string s(buf.data() + i * len, len);
    out.push_back(s.substr(0, s.find('\0')));
  }
  return out;
}

std::string read_string_attr(hid_t obj, const char* name, const std::string& where) {
  auto values = read_strings_attr(obj, name, where);
  if (values.size() != 1) STRATA_THROW(DataError, "{}: attribute '{}' must hold one string", where, name);
  return values[0];
}

std::vector<int64_t> read_ints_attr(hid_t obj, const char* name, const std::string& where) {
  return read_numeric<int64_t>(obj, name, H5T_INTEGER, H5T_NATIVE_INT64, where);
}

int64_t read_int_attr(hid_t obj, const char* name, const std::string& where) {
  auto values = read_ints_attr(obj, name, where);
  if (values.size() != 1) STRATA_THROW(DataError, "{}: attribute '{}' must hold one integer", where, name);
  return values[0];
}

double read_double_attr(hid_t obj, const char* name, const std::string& where) {
  auto values = read_numeric<double>(obj, name, H5T_FLOAT, H5T_NATIVE_DOUBLE, where);
  if (values.size() != 1) STRATA_THROW(DataError, "{}: attribute '{}' must hold one number", where, name);
  return values[0];
}

std::vector<hsize_t> dims_of(hid_t dataset) {
  Handle space = make<DataError>(H5Dget_space(dataset), H5Sclose, "H5Dget_space");
  int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) throw DataError("dataset has no simple dataspace: " + error_text());
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return dims;
}

std::vector<std::string> member_names(hid_t group, const std::string& where) {
  H5G_info_t info{};
  check<DataError>(H5Gget_info(group, &info), where + ": cannot list the group");
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    auto name_of = [&](char* buf, size_t size) {
      return H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, buf, size, H5P_DEFAULT);
    };
    const ssize_t len = name_of(nullptr, 0);
    std::string name(static_cast<size_t>(std::max<ssize_t>(len, 0)) + 1, '\0');
    if (len < 0 || name_of(name.data(), name.size()) != len) {
      check<DataError>(-1, fmt::format("{}: cannot read the name of member {}", where, i));
    }
    name.resize(static_cast<size_t>(len));
    names.push_back(std::move(name));
  }
  return names;
}

}  // namespace strata::data::h5
