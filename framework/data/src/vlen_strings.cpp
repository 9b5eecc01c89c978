// Variable-length strings read from the file's bytes, every heap reference checked
// (see vlen_strings.h). Layouts from the HDF5 file format specification, version 2:
// a dataset element is {uint32 length, 8-byte collection address, uint32 object
// index}; a collection is "GCOL", version 1, 3 reserved bytes, its 8-byte size, then
// objects {uint16 index, uint16 references, 4 reserved, 8-byte size, data padded to 8}
// up to a free-space object (index 0) or a tail too short for an object header.
#include "strata/data/vlen_strings.h"

#include "strata/core/error.h"
#include "strata/data/h5.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

namespace strata::data {

using core::DataError;

namespace {

constexpr uint64_t kElementBytes = 16;     // length, collection address, object index
constexpr uint64_t kCollectionHeader = 16; // "GCOL", version, reserved, size
constexpr uint64_t kObjectHeader = 16;     // index, references, reserved, size
constexpr uint64_t kMinCollection = 4096;  // HDF5 never writes a smaller collection

uint64_t le(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

// A read-only descriptor, closed on scope exit.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// One global heap collection: where each object's data lies within `bytes`.
struct Collection {
  std::vector<unsigned char> bytes;
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> objects;  // index -> (data offset, size)
};

class Reader {
 public:
  Reader(const std::string& path, const char* name, int64_t file_bytes)
      : path_(path), name_(name), file_bytes_(static_cast<uint64_t>(file_bytes)), fd_{::open(path.c_str(), O_RDONLY | O_CLOEXEC)} {
    if (fd_.fd < 0) STRATA_THROW(DataError, "{}: cannot open for reading: {}", path, std::strerror(errno));
  }

  std::vector<unsigned char> read(uint64_t offset, uint64_t bytes, const std::string& what) const {
    if (offset > file_bytes_ || bytes > file_bytes_ - offset) {
      STRATA_THROW(DataError, "{}: /{} {} lies at bytes {}..{}, past the end of the file ({} bytes): the file is "
                   "corrupt or truncated", path_, name_, what, offset, offset + bytes, file_bytes_);
    }
    std::vector<unsigned char> out(bytes);
    size_t done = 0;
    while (done < bytes) {
      ssize_t got = ::pread(fd_.fd, out.data() + done, bytes - done, static_cast<off_t>(offset + done));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) STRATA_THROW(DataError, "{}: reading /{} {}: {}", path_, name_, what, std::strerror(errno));
      done += static_cast<size_t>(got);
    }
    return out;
  }

  // The string of element `i` whose on-disk reference is `element` (16 bytes).
  std::string string_of(int64_t i, const unsigned char* element, uint64_t base) {
    const uint64_t length = le(element, 4), address = le(element + 4, 8), index = le(element + 12, 4);
    if (length == 0) return "";
    const Collection& c = collection(i, base + address);
    auto it = c.objects.find(index);
    if (index == 0 || it == c.objects.end() || it->second.second != length) {
      STRATA_THROW(DataError, "{}: /{} entry {} refers to heap object {} of {} bytes at address {}, which that "
                   "collection does not hold: the file is corrupt; repack it", path_, name_, i, index, length, address);
    }
    return std::string(reinterpret_cast<const char*>(c.bytes.data() + it->second.first), length);
  }

 private:
  const Collection& collection(int64_t i, uint64_t offset) {
    auto found = collections_.find(offset);
    if (found != collections_.end()) return found->second;
    const std::string what = fmt::format("entry {} (its heap collection)", i);
    auto header = read(offset, kCollectionHeader, what);
    const uint64_t size = le(header.data() + 8, 8);
    if (std::memcmp(header.data(), "GCOL", 4) != 0 || header[4] != 1 || size < kMinCollection || size % 8 != 0) {
      STRATA_THROW(DataError, "{}: /{} entry {} refers to address {}, which holds no valid heap collection: the file "
                   "is corrupt; repack it", path_, name_, i, offset);
    }
    Collection c;
    c.bytes = read(offset, size, what);
    walk(c, i, offset);
    return collections_.emplace(offset, std::move(c)).first->second;
  }

  // Lists the objects as HDF5 would, refusing anything HDF5 would step out of bounds on.
  void walk(Collection& c, int64_t i, uint64_t offset) const {
    const uint64_t end = c.bytes.size();
    uint64_t p = kCollectionHeader;
    while (p + kObjectHeader <= end) {
      const uint64_t index = le(c.bytes.data() + p, 2), size = le(c.bytes.data() + p + 8, 8);
      const uint64_t need = index == 0 ? size : kObjectHeader + (size + 7) / 8 * 8;
      const bool fits = size <= end && need >= kObjectHeader && need <= end - p && (index != 0 || p + need == end);
      if (!fits || !c.objects.emplace(index, std::pair{p + kObjectHeader, size}).second) {
        STRATA_THROW(DataError, "{}: /{} entry {}: the heap collection at address {} is damaged at its byte {} (object "
                     "{} of {} bytes): the file is corrupt; repack it", path_, name_, i, offset, p, index, size);
      }
      p += need;
    }
  }

  std::string path_;
  const char* name_;
  uint64_t file_bytes_;
  Fd fd_;
  std::map<uint64_t, Collection> collections_;
};

// The file offset of HDF5 address 0 (a user block shifts it); checks the 8-byte sizes.
uint64_t base_address(hid_t dataset, const std::string& path) {
  h5::Handle file = h5::make<DataError>(H5Iget_file_id(dataset), H5Fclose, path);
  h5::Handle fcpl = h5::make<DataError>(H5Fget_create_plist(file.get()), H5Pclose, path);
  hsize_t userblock = 0;
  size_t sizeof_addr = 0, sizeof_size = 0;
  H5Pget_userblock(fcpl.get(), &userblock);
  H5Pget_sizes(fcpl.get(), &sizeof_addr, &sizeof_size);
  if (sizeof_addr != 8 || sizeof_size != 8) {
    STRATA_THROW(DataError, "{}: {}-byte addresses and {}-byte lengths; this reader knows 8 and 8: repack it", path,
                 sizeof_addr, sizeof_size);
  }
  return userblock;
}

}  // namespace

std::vector<std::string> read_vlen_strings(hid_t dataset, const std::string& path, const char* name,
                                           int64_t file_bytes) {
  h5::Handle dcpl = h5::make<DataError>(H5Dget_create_plist(dataset), H5Pclose, path);
  h5::Handle type = h5::make<DataError>(H5Dget_type(dataset), H5Tclose, path);
  const std::vector<hsize_t> dims = h5::dims_of(dataset);
  if (dims.size() != 1 || H5Pget_layout(dcpl.get()) != H5D_CONTIGUOUS || H5Tis_variable_str(type.get()) <= 0) {
    h5::error_text();
    STRATA_THROW(DataError, "{}: dataset /{} must be a contiguous list of variable-length strings (format versions 1 "
                 "and 2)", path, name);
  }
  const auto n = static_cast<int64_t>(dims[0]);
  if (n == 0) return {};
  const uint64_t base = base_address(dataset, path);
  const haddr_t address = H5Dget_offset(dataset);
  if (address == HADDR_UNDEF) {
    h5::error_text();
    STRATA_THROW(DataError, "{}: dataset /{} holds {} names but no storage: the file is corrupt", path, name, n);
  }
  Reader reader(path, name, file_bytes);
  const auto elements = reader.read(base + address, kElementBytes * static_cast<uint64_t>(n), "(its references)");
  std::vector<std::string> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(reader.string_of(i, elements.data() + kElementBytes * i, base));
  return out;
}

}  // namespace strata::data
