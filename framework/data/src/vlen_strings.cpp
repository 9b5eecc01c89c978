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

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>

namespace strata::data {

using core::DataError;

namespace {

constexpr uint64_t kElementBytes = 16;     // length, collection address, object index
constexpr uint64_t kCollectionHeader = 16; // "GCOL", version, reserved, size
constexpr uint64_t kObjectHeader = 16;     // index, references, reserved, size
constexpr uint64_t kMinCollection = 4096;  // HDF5 never writes a smaller collection
constexpr uint64_t kHeaderPrefix = 16;     // v1 object header: version, reserved, messages, references, size, padding
constexpr uint64_t kMessageHeader = 8;     // v1 header message: type, size, flags, reserved
constexpr uint64_t kMaxHeaderBlock = 1 << 20;  // a header block's messages are far smaller (sizes are 2 bytes)
constexpr size_t kMaxHeaderBlocks = 64;    // the first block and its continuations
constexpr uint64_t kContinuationMessage = 0x10, kAttributeMessage = 0x0c;
constexpr unsigned kSharedMessage = 0x02;  // flag: the message lives elsewhere

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
  // `where`: the file (and object) that errors name; `label`: what is read there
  // ("/case_names", "attribute 'tool'").
  Reader(const std::string& path, std::string where, std::string label, int64_t file_bytes)
      : where_(std::move(where)), label_(std::move(label)), file_bytes_(static_cast<uint64_t>(file_bytes)),
        fd_{::open(path.c_str(), O_RDONLY | O_CLOEXEC)} {
    if (fd_.fd < 0) STRATA_THROW(DataError, "{}: cannot open for reading: {}", path, std::strerror(errno));
  }

  const std::string& where() const { return where_; }
  const std::string& label() const { return label_; }

  std::vector<unsigned char> read(uint64_t offset, uint64_t bytes, const std::string& what) const {
    if (offset > file_bytes_ || bytes > file_bytes_ - offset) {
      STRATA_THROW(DataError, "{}: {} {} lies at bytes {}..{}, past the end of the file ({} bytes): the file is "
                   "corrupt or truncated", where_, label_, what, offset, offset + bytes, file_bytes_);
    }
    std::vector<unsigned char> out(bytes);
    size_t done = 0;
    while (done < bytes) {
      ssize_t got = ::pread(fd_.fd, out.data() + done, bytes - done, static_cast<off_t>(offset + done));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) STRATA_THROW(DataError, "{}: reading {} {}: {}", where_, label_, what, std::strerror(errno));
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
      STRATA_THROW(DataError, "{}: {} entry {} refers to heap object {} of {} bytes at address {}, which that "
                   "collection does not hold: the file is corrupt; repack it", where_, label_, i, index, length,
                   address);
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
      STRATA_THROW(DataError, "{}: {} entry {} refers to address {}, which holds no valid heap collection: the file "
                   "is corrupt; repack it", where_, label_, i, offset);
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
        STRATA_THROW(DataError, "{}: {} entry {}: the heap collection at address {} is damaged at its byte {} (object "
                     "{} of {} bytes): the file is corrupt; repack it", where_, label_, i, offset, p, index, size);
      }
      p += need;
    }
  }

  std::string where_, label_;
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

// Attribute message versions 1-3: version, flags, name/datatype/dataspace sizes, (v3:
// the name's encoding), then the name, datatype and dataspace (each padded to 8 bytes
// in version 1), then the data. The name, and where the data starts in `m`; nothing
// when the message is too short to hold what it claims.
std::optional<std::pair<std::string, uint64_t>> parse_attribute(const unsigned char* m, uint64_t size) {
  if (size < 9 || m[0] < 1 || m[0] > 3) return std::nullopt;
  const auto pad = [&](uint64_t v) { return m[0] == 1 ? (v + 7) / 8 * 8 : v; };
  const uint64_t start = m[0] == 3 ? 9 : 8, name_size = le(m + 2, 2);
  const uint64_t data = start + pad(name_size) + pad(le(m + 4, 2)) + pad(le(m + 6, 2));
  if (name_size == 0 || data > size) return std::nullopt;
  const auto* name = reinterpret_cast<const char*>(m + start);
  return std::pair{std::string(name, strnlen(name, name_size)), data};
}

// The first `bytes` of the data of the reader's attribute `name`, found among the
// messages of the version 1 object header at file offset `header` (the only version
// format 1-2 files hold) and its continuation blocks, every size checked first.
std::vector<unsigned char> attribute_data(const Reader& reader, uint64_t base, uint64_t header, const char* name,
                                          uint64_t bytes) {
  const auto prefix = reader.read(header, kHeaderPrefix, "(its object header)");
  std::vector<std::pair<uint64_t, uint64_t>> blocks{{header + kHeaderPrefix, le(prefix.data() + 8, 4)}};
  for (size_t b = 0; b < blocks.size() && b < kMaxHeaderBlocks && prefix[0] == 1; ++b) {
    if (blocks[b].second > kMaxHeaderBlock) break;
    const auto block = reader.read(blocks[b].first, blocks[b].second, "(its object header)");
    for (uint64_t p = 0; p + kMessageHeader <= block.size();) {
      const uint64_t type = le(block.data() + p, 2), size = le(block.data() + p + 2, 2);
      const unsigned char* m = block.data() + p + kMessageHeader;
      if (size > block.size() - p - kMessageHeader) break;
      if (type == kContinuationMessage && size >= 16) blocks.emplace_back(base + le(m, 8), le(m + 8, 8));
      const auto attribute = type == kAttributeMessage ? parse_attribute(m, size) : std::nullopt;
      if (attribute && attribute->first == name && !(block[p + 4] & kSharedMessage) &&
          size - attribute->second >= bytes) {
        return std::vector<unsigned char>(m + attribute->second, m + attribute->second + bytes);
      }
      p += kMessageHeader + size;
    }
  }
  STRATA_THROW(DataError, "{}: {}: its {} bytes of string references are not where its object header (version {}, "
               "at address {}) says: the file is corrupt; repack it", reader.where(), reader.label(), bytes, prefix[0],
               header - base);
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
  Reader reader(path, path, fmt::format("/{}", name), file_bytes);
  const auto elements = reader.read(base + address, kElementBytes * static_cast<uint64_t>(n), "(its references)");
  std::vector<std::string> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(reader.string_of(i, elements.data() + kElementBytes * i, base));
  return out;
}

std::vector<std::string> read_vlen_strings_attr(hid_t obj, const char* name, size_t count, const std::string& where) {
  if (count == 0) return {};
  std::string path(static_cast<size_t>(std::max<ssize_t>(H5Fget_name(obj, nullptr, 0), 0)), '\0');
  H5O_info_t info{};
  hsize_t file_bytes = 0;
  if (path.empty() || H5Fget_name(obj, path.data(), path.size() + 1) < 0 || H5Oget_info2(obj, &info, H5O_INFO_BASIC) < 0 ||
      H5Fget_filesize(obj, &file_bytes) < 0) {
    STRATA_THROW(DataError, "{}: cannot locate attribute '{}': {}", where, name, h5::error_text());
  }
  const uint64_t base = base_address(obj, path);
  Reader reader(path, where, fmt::format("attribute '{}'", name), static_cast<int64_t>(file_bytes));
  const auto elements = attribute_data(reader, base, base + info.addr, name, kElementBytes * count);
  std::vector<std::string> out;
  for (size_t i = 0; i < count; ++i) {
    out.push_back(reader.string_of(static_cast<int64_t>(i), elements.data() + kElementBytes * i, base));
  }
  return out;
}

}  // namespace strata::data
