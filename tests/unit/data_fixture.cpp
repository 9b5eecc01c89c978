// The data tests' temporary folders, tiny dataset and file-damaging helpers.
#include "data_fixture.h"

#include "strata/data/format.h"
#include "strata/data/h5.h"
#include "strata/data/metadata_checksum.h"
#include "strata/data/slice_store.h"
#include "strata/dataprep/files.h"
#include "strata/dataprep/synth.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace strata::test {

namespace fs = std::filesystem;

namespace {

struct TempRoot {
  std::string path;
  TempRoot() {
    std::string pattern = (fs::temp_directory_path() / "strata-data-test-XXXXXX").string();
    char* made = ::mkdtemp(pattern.data());
    if (!made) throw std::runtime_error("mkdtemp failed");
    path = made;
  }
  ~TempRoot() { dataprep::remove_tree(path); }
};

}  // namespace

const std::string& temp_root() {
  static TempRoot root;
  return root.path;
}

std::string temp_dir(const std::string& name) {
  fs::path p = fs::path(temp_root()) / name;
  dataprep::remove_tree(p.string());
  fs::create_directories(p);
  return p.string();
}

const std::string& tiny_cases() {
  static const std::string dir = [] {
    dataprep::SynthOptions o;
    o.out_dir = temp_dir("tiny_cases");
    o.cases = 6;
    o.seed = 11;
    o.shape = {48, 48, 24};
    dataprep::synthesize_dataset(o);
    return o.out_dir;
  }();
  return dir;
}

dataprep::PackOptions tiny_pack_options(const std::string& out) {
  dataprep::PackOptions o;
  o.input_dir = tiny_cases();
  o.out_path = out;
  o.size = 32;
  o.val_fraction = 0.34;
  o.keep_empty = 0.5;
  o.seed = 3;
  return o;
}

const std::string& tiny_packed() {
  static const std::string path = [] {
    std::string out = (fs::path(temp_root()) / "tiny.h5").string();
    dataprep::pack_dataset(tiny_pack_options(out));
    return out;
  }();
  return path;
}

void copy_file(const std::string& from, const std::string& to) {
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}

uint64_t chunk_offset(const std::string& path, const char* dataset, int64_t slice) {
  data::h5::Lock lock;
  data::h5::Handle file = data::h5::make<core::IoError>(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, path);
  data::h5::Handle ds = data::h5::make<core::IoError>(H5Dopen2(file.get(), dataset, H5P_DEFAULT), H5Dclose, dataset);
  std::vector<hsize_t> coord(data::h5::dims_of(ds.get()).size(), 0);
  coord[0] = static_cast<hsize_t>(slice);
  unsigned mask = 0;
  haddr_t addr = 0;
  hsize_t size = 0;
  data::h5::check<core::IoError>(H5Dget_chunk_info_by_coord(ds.get(), coord.data(), &mask, &addr, &size), "chunk info");
  return addr;
}

void flip_byte(const std::string& path, uint64_t offset) {
  int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  unsigned char b = 0;
  ASSERT_EQ(::pread(fd, &b, 1, static_cast<off_t>(offset)), 1);
  b ^= 0xff;
  ASSERT_EQ(::pwrite(fd, &b, 1, static_cast<off_t>(offset)), 1);
  ::close(fd);
}

namespace {

// Rewrites every string attribute of the root as variable-length strings (in HDF5's
// global heap), the way the packer of format versions 1 and 2 wrote them.
void make_string_attrs_vlen(hid_t file, const std::string& path) {
  std::vector<std::string> names;
  H5Aiterate2(file, H5_INDEX_NAME, H5_ITER_INC, nullptr,
              [](hid_t, const char* name, const H5A_info_t*, void* out) -> herr_t {
                static_cast<std::vector<std::string>*>(out)->push_back(name);
                return 0;
              }, &names);
  data::h5::Handle vlen = data::h5::make<core::IoError>(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy");
  H5Tset_size(vlen.get(), H5T_VARIABLE);
  H5Tset_cset(vlen.get(), H5T_CSET_UTF8);
  for (const auto& name : names) {
    data::h5::Handle attr = data::h5::make<core::IoError>(H5Aopen(file, name.c_str(), H5P_DEFAULT), H5Aclose, name);
    data::h5::Handle type = data::h5::make<core::IoError>(H5Aget_type(attr.get()), H5Tclose, name);
    if (H5Tget_class(type.get()) != H5T_STRING) continue;
    data::h5::Handle space = data::h5::make<core::IoError>(H5Aget_space(attr.get()), H5Sclose, name);
    const std::vector<std::string> values = data::h5::read_strings_attr(file, name.c_str(), path);
    attr.reset();
    H5Adelete(file, name.c_str());
    attr = data::h5::make<core::IoError>(H5Acreate2(file, name.c_str(), vlen.get(), space.get(), H5P_DEFAULT,
                                                    H5P_DEFAULT), H5Aclose, name);
    std::vector<const char*> ptrs;
    for (const auto& v : values) ptrs.push_back(v.c_str());
    data::h5::check<core::IoError>(H5Awrite(attr.get(), vlen.get(), ptrs.data()), name);
  }
}

}  // namespace

void make_version2(const std::string& path) {
  std::vector<std::string> names = [&] {
    data::SliceStore store(path);
    return store.case_names();
  }();
  data::h5::Lock lock;
  data::h5::Handle file = data::h5::make<core::IoError>(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose, path);
  H5Ldelete(file.get(), data::format::kCaseNames, H5P_DEFAULT);
  H5Adelete(file.get(), data::format::kAttrMetadataChecksum);
  data::h5::Handle type = data::h5::make<core::IoError>(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy");
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  hsize_t dims[1] = {names.size()};
  data::h5::Handle space = data::h5::make<core::IoError>(H5Screate_simple(1, dims, nullptr), H5Sclose, path);
  data::h5::Handle ds = data::h5::make<core::IoError>(
      H5Dcreate2(file.get(), data::format::kCaseNames, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
      H5Dclose, path);
  std::vector<const char*> ptrs;
  for (const auto& n : names) ptrs.push_back(n.c_str());
  data::h5::check<core::IoError>(H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), path);
  data::h5::write_attr(file.get(), data::format::kAttrVersion, int64_t{2});
  make_string_attrs_vlen(file.get(), path);
}

uint64_t dataset_offset(const std::string& path, const char* dataset) {
  data::h5::Lock lock;
  data::h5::Handle file = data::h5::make<core::IoError>(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, path);
  data::h5::Handle ds = data::h5::make<core::IoError>(H5Dopen2(file.get(), dataset, H5P_DEFAULT), H5Dclose, dataset);
  return H5Dget_offset(ds.get());
}

uint64_t find_bytes(const std::string& path, const std::string& bytes, uint64_t from) {
  std::ifstream in(path, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t at = all.find(bytes, from);
  EXPECT_NE(at, std::string::npos) << "pattern not found in " << path;
  return at;
}

void set_byte(const std::string& path, uint64_t offset, unsigned char value) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(static_cast<char>(value));
}

uint64_t chunk_key_offset(const std::string& path, const char* dataset, int64_t slice) {
  std::vector<hsize_t> dims;
  uint32_t bytes = 0;
  {
    data::h5::Lock lock;
    data::h5::Handle file = data::h5::make<core::IoError>(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, path);
    data::h5::Handle ds = data::h5::make<core::IoError>(H5Dopen2(file.get(), dataset, H5P_DEFAULT), H5Dclose, dataset);
    dims = data::h5::dims_of(ds.get());
    std::vector<hsize_t> coord(dims.size(), 0);
    coord[0] = static_cast<hsize_t>(slice);
    unsigned mask = 0;
    haddr_t addr = 0;
    hsize_t size = 0;
    H5Dget_chunk_info_by_coord(ds.get(), coord.data(), &mask, &addr, &size);
    bytes = static_cast<uint32_t>(size);
  }
  std::string key(8 + 8 * (dims.size() + 1), '\0');
  std::memcpy(key.data(), &bytes, 4);  // little-endian, as HDF5 stores it (x86)
  const auto first = static_cast<uint64_t>(slice);
  std::memcpy(key.data() + 8, &first, 8);
  return find_bytes(path, key);
}

void make_version1(const std::string& path) {
  make_version2(path);
  data::h5::Lock lock;
  data::h5::Handle file = data::h5::make<core::IoError>(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose, path);
  for (const char* name : {data::format::kCaseDims, data::format::kCaseSpacing, data::format::kCaseXformCodes,
                           data::format::kCaseQform, data::format::kCaseSform, data::format::kCaseCrop,
                           data::format::kCaseScale}) {
    H5Ldelete(file.get(), name, H5P_DEFAULT);
  }
  data::h5::write_attr(file.get(), data::format::kAttrVersion, int64_t{1});
}

const std::string& tiny_folds_packed() {
  static const std::string path = [] {
    std::string out = (fs::path(temp_root()) / "tiny_folds.h5").string();
    dataprep::PackOptions o = tiny_pack_options(out);
    o.folds = 3;
    o.fold = 1;
    o.test_fraction = 0.1;  // round(0.6) = 1 case
    dataprep::pack_dataset(o);
    return out;
  }();
  return path;
}

void overwrite_dataset(const std::string& path, const char* name, hid_t mem_type, const void* data, bool reseal) {
  data::h5::Lock lock;
  data::h5::Handle file = data::h5::make<core::IoError>(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose, path);
  data::h5::Handle ds = data::h5::make<core::IoError>(H5Dopen2(file.get(), name, H5P_DEFAULT), H5Dclose, name);
  data::h5::check<core::IoError>(H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), name);
  ds.reset();
  if (reseal) {
    data::h5::write_attr(file.get(), data::format::kAttrMetadataChecksum,
                         static_cast<int64_t>(data::metadata_checksum(file.get(), path)));
  }
}

void set_int_attr(const std::string& path, const char* name, int64_t value) {
  data::h5::Lock lock;
  data::h5::Handle file = data::h5::make<core::IoError>(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose, path);
  data::h5::write_attr(file.get(), name, value);
}

}  // namespace strata::test
