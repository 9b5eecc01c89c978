// SliceStore: validation on open, chunk tables for direct reads, and the two read
// paths (see slice_store.h).
#include "strata/data/slice_store.h"

#include "strata/core/error.h"
#include "strata/core/files.h"
#include "strata/core/timer.h"
#include "strata/data/fletcher32.h"
#include "strata/data/format.h"
#include "strata/data/h5.h"
#include "strata/data/metadata_checksum.h"
#include "strata/data/vlen_strings.h"
#include "packed_file.h"

#include <ATen/ATen.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <map>
#include <optional>
#include <set>

namespace strata::data {

using core::ConfigError;
using core::DataError;

namespace {

constexpr size_t kMaxIov = IOV_MAX;

// Where each slice's chunk of one dataset lies in the file, for direct reads.
struct ChunkTable {
  std::vector<uint64_t> offset;  // absolute file offset of slice i's chunk
  std::vector<uint64_t> size;    // stored bytes of slice i's chunk (all `stored` unless recompressed)
  uint64_t stored = 0;           // bytes per stored chunk: payload (+ 4 checksum bytes)
  uint64_t payload = 0;          // bytes of one slice's data
};

}  // namespace

const char* read_path_name(ReadPath path) { return path == ReadPath::kDirect ? "direct" : "hdf5"; }

ReadPath parse_read_path(std::string_view name) {
  if (name == "direct") return ReadPath::kDirect;
  if (name == "hdf5") return ReadPath::kHdf5;
  STRATA_THROW(ConfigError, "unknown read path '{}' (expected direct or hdf5)", name);
}

struct SliceStore::Impl {
  std::string path;
  ReadPath read_path = ReadPath::kDirect;
  StoreInfo info;
  int64_t file_bytes = 0;
  int64_t n = 0, h = 0, w = 0;
  int64_t channels = 0;  // per stored slice
  int64_t context = 1;   // slices per read sample
  std::vector<int64_t> neighbours;  // [n, context]: store index of each slice's neighbours, -1 for zeros
  int64_t classes = 0;   // of the label map
  std::vector<std::string> cases;
  std::vector<CaseSource> sources;  // format version 2; empty for version 1
  std::vector<int32_t> slice_case, slice_z;
  std::vector<SplitInfo> splits;
  std::vector<int> split_of_case;  // [cases]: index into `splits` as stored (-1: in none)
  CaseFoldTable folds;             // the file's folds (none: folds 0)
  h5::Handle file, images, labels, half_type;
  bool direct_possible = true;  // chunks carry Fletcher-32 at most: payload readable as is
  ChunkTable image_chunks, label_chunks;
  int fd = -1;

  ~Impl() {
    if (fd >= 0) ::close(fd);
    h5::Lock lock;  // handles close under the lock
    images.reset();
    labels.reset();
    half_type.reset();
    file.reset();
  }

  std::string where() const { return path; }
  std::string describe(int64_t i) const {
    if (i < 0 || i >= n) return fmt::format("slice {}", i);
    auto c = static_cast<size_t>(slice_case[static_cast<size_t>(i)]);
    return fmt::format("slice {} (case {}, z {})", i, c < cases.size() ? cases[c] : "?", slice_z[static_cast<size_t>(i)]);
  }

  void open(SliceStoreOptions options);
  void read_version();
  void read_info();
  h5::Handle open_dataset(const char* name) const;
  void check_layout(hid_t dataset, const char* name, const std::vector<hsize_t>& chunk);
  template <class T>
  std::vector<T> read_vector(const char* name, hid_t mem_type, int64_t expected) const;
  template <class T>
  std::vector<T> read_array(const char* name, hid_t mem_type, std::vector<int64_t> shape) const;
  std::vector<std::string> read_names(const char* name) const;
  void check_channel_names() const;
  std::vector<std::string> split_names_in_file() const;
  void read_splits();
  void select_fold(int64_t want);
  void read_case_sources();
  ChunkTable chunk_table(hid_t dataset, const char* name, uint64_t payload) const;
  void check_chunk_count(hid_t dataset, const char* name) const;
  void check_no_overlap(const ChunkTable& table, const char* name) const;

  void read_direct(const ChunkTable& table, const char* name, const int64_t* idx, int64_t count,
                   unsigned char* dest) const;
  void read_hdf5(hid_t dataset, hid_t mem_type, const char* name, uint64_t payload, const int64_t* idx,
                 int64_t count, unsigned char* dest) const;
  void check_labels(const uint8_t* labels, const int64_t* idx, int64_t count) const;
  void find_neighbours(int64_t want);
  std::vector<int64_t> with_neighbours(const int64_t* idx, int64_t count) const;
};

void SliceStore::Impl::open(SliceStoreOptions options) {
  file = packed::open_file(path, "the packed slice file (data.path)");
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    STRATA_THROW(DataError, "{}: cannot open packed file: {}", path, std::strerror(errno));
  }
  file_bytes = static_cast<int64_t>(st.st_size);

  h5::Lock lock;
  read_version();
  // Before any string attribute is read: version 3 proves its metadata whole; older
  // files have their case names' heap collections checked (vlen_strings.h), which the
  // string attributes share.
  if (info.format_version >= format::kFirstChecksummedVersion) {
    packed::check_metadata_checksum(file.get(), path, info.format_version);
  } else {
    cases = read_names(format::kCaseNames);
  }
  read_info();

  images = open_dataset(format::kImages);
  labels = open_dataset(format::kLabels);
  auto idims = h5::dims_of(images.get());
  auto ldims = h5::dims_of(labels.get());
  if (idims.size() != 4 || idims[1] < 1) {
    STRATA_THROW(DataError, "{}: dataset /{} must have shape [N, channels, H, W], has {}", path, format::kImages,
                 fmt::join(idims, " x "));
  }
  n = static_cast<int64_t>(idims[0]);
  channels = static_cast<int64_t>(idims[1]);
  check_channel_names();
  h = static_cast<int64_t>(idims[2]);
  w = static_cast<int64_t>(idims[3]);
  if (ldims != std::vector<hsize_t>{idims[0], idims[2], idims[3]}) {
    STRATA_THROW(DataError, "{}: dataset /{} has shape [{}], expected [{}, {}, {}] to match /{}", path,
                 format::kLabels, fmt::join(ldims, ", "), n, h, w, format::kImages);
  }
  int64_t attr_h = h5::read_int_attr(file.get(), format::kAttrHeight, path);
  int64_t attr_w = h5::read_int_attr(file.get(), format::kAttrWidth, path);
  if (attr_h != h || attr_w != w) {
    STRATA_THROW(DataError, "{}: attributes say {}x{} slices but /{} holds {}x{}", path, attr_h, attr_w,
                 format::kImages, h, w);
  }

  half_type = h5::make<DataError>(H5Dget_type(images.get()), H5Tclose, path);
  if (H5Tget_class(half_type.get()) != H5T_FLOAT || H5Tget_size(half_type.get()) != 2) {
    STRATA_THROW(DataError, "{}: dataset /{} must hold 16-bit floats", path, format::kImages);
  }
  {
    h5::Handle ltype = h5::make<DataError>(H5Dget_type(labels.get()), H5Tclose, path);
    if (H5Tget_class(ltype.get()) != H5T_INTEGER || H5Tget_size(ltype.get()) != 1) {
      STRATA_THROW(DataError, "{}: dataset /{} must hold 8-bit integers", path, format::kLabels);
    }
  }
  check_layout(images.get(), format::kImages, {1, idims[1], idims[2], idims[3]});
  check_layout(labels.get(), format::kLabels, {1, idims[2], idims[3]});

  slice_case = read_vector<int32_t>(format::kSliceCase, H5T_NATIVE_INT32, n);
  slice_z = read_vector<int32_t>(format::kSliceZ, H5T_NATIVE_INT32, n);
  if (info.format_version >= format::kFirstChecksummedVersion) cases = read_names(format::kCaseNames);
  packed::check_unique_names(cases, path);
  for (int64_t i = 0; i < n; ++i) {
    int32_t c = slice_case[static_cast<size_t>(i)];
    if (c < 0 || c >= static_cast<int64_t>(cases.size()) || slice_z[static_cast<size_t>(i)] < 0) {
      STRATA_THROW(DataError, "{}: slice {} has case index {} and z {}, outside the {} cases", path, i, c,
                   slice_z[static_cast<size_t>(i)], cases.size());
    }
  }
  read_splits();
  select_fold(options.fold);
  if (info.format_version >= 2) read_case_sources();
  find_neighbours(options.context);

  // Both read paths: the chunk index must list every slice once, where the direct
  // path will read it; a damaged index entry otherwise reads as zeros through HDF5.
  image_chunks = chunk_table(images.get(), format::kImages, static_cast<uint64_t>(n > 0 ? 2 * channels * h * w : 0));
  label_chunks = chunk_table(labels.get(), format::kLabels, static_cast<uint64_t>(h * w));
  read_path = options.read_path;
  if (read_path == ReadPath::kDirect && !direct_possible) read_path = ReadPath::kHdf5;
  if (read_path == ReadPath::kDirect) {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) STRATA_THROW(DataError, "{}: cannot open for reading: {}", path, std::strerror(errno));
  }
}

// The version comes first, from an integer attribute: whatever else the file holds is
// read in the way its version calls for.
void SliceStore::Impl::read_version() {
  if (!h5::has_attr(file.get(), format::kAttrFormat) || !h5::has_attr(file.get(), format::kAttrVersion)) {
    STRATA_THROW(DataError, "{}: not a Strata slice file (no root attributes '{}' and '{}'); pack one with "
                 "`brats_recipe pack`", path, format::kAttrFormat, format::kAttrVersion);
  }
  // Packed volumes are refused by name. Their `format` is a fixed-length string, read
  // without touching a heap; a version 1-2 slice file's is read after its heap checks.
  const std::string name = packed::is_fixed_string_attr(file.get(), format::kAttrFormat)
                               ? h5::read_string_attr(file.get(), format::kAttrFormat, path)
                               : std::string();
  if (packed::ends_with(name, format::kVolumeFormatSuffix)) {
    STRATA_THROW(DataError, "{}: a file of packed volumes ('{}' is '{}'), not of slices: 2D tasks read slice files "
                 "(`brats_recipe pack` without --volumes); 3D tasks read this one", path, format::kAttrFormat, name);
  }
  info.format_version = h5::read_int_attr(file.get(), format::kAttrVersion, path);
  if (info.format_version < format::kOldestReadableVersion || info.format_version > format::kFormatVersion) {
    STRATA_THROW(DataError, "{}: format version {}, but this Strata reads versions {} to {}; repack it with this "
                 "build's `brats_recipe pack`", path, info.format_version, format::kOldestReadableVersion,
                 format::kFormatVersion);
  }
}

void SliceStore::Impl::read_info() {
  info.format = h5::read_string_attr(file.get(), format::kAttrFormat, path);
  const std::string_view name = info.format, prefix = format::kFormatPrefix, suffix = format::kFormatSuffix;
  if (name.size() <= prefix.size() + suffix.size() || name.substr(0, prefix.size()) != prefix ||
      name.substr(name.size() - suffix.size()) != suffix) {
    STRATA_THROW(DataError, "{}: not a Strata slice file (root attribute '{}' is '{}', not '{}<content>{}'); pack "
                 "one with `brats_recipe pack`", path, format::kAttrFormat, info.format, prefix, suffix);
  }
  classes = packed::read_label_map(file.get(), path, info);
  packed::read_provenance(file.get(), path, info);
  info.selection = h5::read_string_attr(file.get(), format::kAttrSelection, path);
  info.keep_empty = h5::read_double_attr(file.get(), format::kAttrKeepEmpty, path);
  if (h5::has_attr(file.get(), format::kAttrSplitMethod)) {
    info.split_method = h5::read_string_attr(file.get(), format::kAttrSplitMethod, path);
  }
}

// The context a read asks for must have been kept by the packer; each slice's
// neighbours are then looked up once, by (case, z).
void SliceStore::Impl::find_neighbours(int64_t want) {
  if (h5::has_attr(file.get(), format::kAttrContext)) {
    info.context = h5::read_int_attr(file.get(), format::kAttrContext, path);
    STRATA_CHECK_AS(DataError, info.context >= 1 && info.context % 2 == 1,
                    "{}: root attribute '{}' = {}, expected an odd count >= 1", path, format::kAttrContext,
                    info.context);
  }
  STRATA_CHECK_AS(ConfigError, want >= 1 && want % 2 == 1, "data.context must be odd and >= 1, got {}", want);
  STRATA_CHECK_AS(DataError, want <= info.context,
                  "{}: data.context {} needs the {} neighbouring slice(s) on each side of every slice, but this file "
                  "was packed with context {}, which keeps {}; repack it with `brats_recipe pack --context {}`", path,
                  want, (want - 1) / 2, info.context, info.context == 1 ? "none" : "fewer", want);
  context = want;
  if (context == 1) return;
  std::map<std::pair<int32_t, int32_t>, int64_t> at;
  for (int64_t i = 0; i < n; ++i) at[{slice_case[static_cast<size_t>(i)], slice_z[static_cast<size_t>(i)]}] = i;
  const int64_t r = (context - 1) / 2;
  neighbours.assign(static_cast<size_t>(n * context), -1);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t d = -r; d <= r; ++d) {
      auto it = at.find({slice_case[static_cast<size_t>(i)], slice_z[static_cast<size_t>(i)] + static_cast<int32_t>(d)});
      if (it != at.end()) neighbours[static_cast<size_t>(i * context + d + r)] = it->second;
    }
  }
}

// The stored slices of a context read, in channel order: `context` per requested slice.
std::vector<int64_t> SliceStore::Impl::with_neighbours(const int64_t* idx, int64_t count) const {
  std::vector<int64_t> out(static_cast<size_t>(count * context));
  for (int64_t k = 0; k < count; ++k) {
    std::copy_n(neighbours.begin() + idx[k] * context, context, out.begin() + k * context);
  }
  return out;
}

h5::Handle SliceStore::Impl::open_dataset(const char* name) const { return packed::open_dataset(file.get(), path, name); }

void SliceStore::Impl::check_layout(hid_t dataset, const char* name, const std::vector<hsize_t>& chunk) {
  h5::Handle dcpl = h5::make<DataError>(H5Dget_create_plist(dataset), H5Pclose, path);
  std::vector<hsize_t> got(chunk.size(), 0);
  if (H5Pget_layout(dcpl.get()) != H5D_CHUNKED ||
      H5Pget_chunk(dcpl.get(), static_cast<int>(got.size()), got.data()) != static_cast<int>(chunk.size()) ||
      got != chunk) {
    h5::error_text();
    STRATA_THROW(DataError, "{}: dataset /{} must be chunked one slice per chunk ([{}])", path, name,
                 fmt::join(chunk, ", "));
  }
  bool fletcher = false;
  int nfilters = H5Pget_nfilters(dcpl.get());
  for (int f = 0; f < nfilters; ++f) {
    unsigned flags = 0;
    size_t nelmts = 0;
    H5Z_filter_t id = H5Pget_filter2(dcpl.get(), static_cast<unsigned>(f), &flags, &nelmts, nullptr, 0, nullptr,
                                     nullptr);
    if (id == H5Z_FILTER_FLETCHER32) {
      fletcher = true;
    } else {
      direct_possible = false;  // compressed or otherwise transformed chunks: let HDF5 decode them
    }
  }
  // Both big datasets must agree: the reader checks both or neither.
  if (std::string(name) == format::kImages) {
    info.checksums = fletcher;
  } else if (fletcher != info.checksums) {
    STRATA_THROW(DataError, "{}: /{} and /{} disagree on Fletcher-32 checksums", path, format::kImages, name);
  }
}

template <class T>
std::vector<T> SliceStore::Impl::read_array(const char* name, hid_t mem_type, std::vector<int64_t> shape) const {
  return packed::read_array<T>(file.get(), path, name, mem_type, shape);
}

template <class T>
std::vector<T> SliceStore::Impl::read_vector(const char* name, hid_t mem_type, int64_t expected) const {
  h5::Handle ds = open_dataset(name);
  auto dims = h5::dims_of(ds.get());
  if (dims.size() != 1 || static_cast<int64_t>(dims[0]) != expected) {
    STRATA_THROW(DataError, "{}: dataset /{} must have shape [{}], has [{}]", path, name, expected,
                 fmt::join(dims, ", "));
  }
  std::vector<T> out(static_cast<size_t>(expected));
  if (expected > 0) {
    h5::check<DataError>(H5Dread(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()),
                         fmt::format("{}: reading dataset /{}", path, name));
  }
  return out;
}

std::vector<std::string> SliceStore::Impl::read_names(const char* name) const {
  h5::Handle ds = open_dataset(name);
  if (info.format_version < format::kFirstChecksummedVersion) {
    return read_vlen_strings(ds.get(), path, name, file_bytes);  // never H5Dread: see vlen_strings.h
  }
  return packed::read_fixed_names(file.get(), path, name);
}

void SliceStore::Impl::read_case_sources() {
  const auto c = static_cast<int64_t>(cases.size());
  auto dims = read_array<int32_t>(format::kCaseDims, H5T_NATIVE_INT32, {c, 3});
  auto spacing = read_array<double>(format::kCaseSpacing, H5T_NATIVE_DOUBLE, {c, 3});
  auto codes = read_array<int32_t>(format::kCaseXformCodes, H5T_NATIVE_INT32, {c, 2});
  auto qform = read_array<double>(format::kCaseQform, H5T_NATIVE_DOUBLE, {c, 4, 4});
  auto sform = read_array<double>(format::kCaseSform, H5T_NATIVE_DOUBLE, {c, 4, 4});
  auto crop = read_array<int32_t>(format::kCaseCrop, H5T_NATIVE_INT32, {c, 3});
  auto scale = read_array<double>(format::kCaseScale, H5T_NATIVE_DOUBLE, {c});
  sources.resize(static_cast<size_t>(c));
  for (size_t k = 0; k < sources.size(); ++k) {
    CaseSource& s = sources[k];
    for (size_t a = 0; a < 3; ++a) {
      s.dims[a] = dims[3 * k + a];
      s.spacing[a] = spacing[3 * k + a];
    }
    s.qform_code = codes[2 * k];
    s.sform_code = codes[2 * k + 1];
    std::copy_n(qform.begin() + static_cast<std::ptrdiff_t>(16 * k), 16, s.qform.begin());
    std::copy_n(sform.begin() + static_cast<std::ptrdiff_t>(16 * k), 16, s.sform.begin());
    s.crop_i = crop[3 * k];
    s.crop_j = crop[3 * k + 1];
    s.side = crop[3 * k + 2];
    s.scale = scale[k];
    if (s.side < 1 || s.dims[0] < 1 || s.dims[1] < 1 || s.dims[2] < 1) {
      STRATA_THROW(DataError, "{}: case {} ({}) has source size {}x{}x{} and crop side {}", path, k, cases[k],
                   s.dims[0], s.dims[1], s.dims[2], s.side);
    }
  }
}

// Root attribute `modalities` names each channel of /images.
void SliceStore::Impl::check_channel_names() const {
  if (static_cast<int64_t>(info.modalities.size()) != channels) {
    STRATA_THROW(DataError, "{}: root attribute '{}' names {} channels [{}], but /{} holds {}", path,
                 format::kAttrModalities, info.modalities.size(), fmt::join(info.modalities, ", "), format::kImages,
                 channels);
  }
}

// The members of /splits, in name order: the splits are the writer's.
std::vector<std::string> SliceStore::Impl::split_names_in_file() const {
  return packed::split_names(file.get(), path);
}

void SliceStore::Impl::read_splits() {
  const std::vector<std::string> names = split_names_in_file();
  split_of_case.assign(cases.size(), -1);
  for (size_t s = 0; s < names.size(); ++s) {
    std::string name = fmt::format("{}/{}", format::kSplits, names[s]);
    h5::Handle ds = open_dataset(name.c_str());
    auto dims = h5::dims_of(ds.get());
    if (dims.size() != 1) STRATA_THROW(DataError, "{}: dataset /{} must be a list of slice indices", path, name);
    SplitInfo split;
    split.name = names[s];
    split.slices = read_vector<int64_t>(name.c_str(), H5T_NATIVE_INT64, static_cast<int64_t>(dims[0]));
    split.cases = h5::read_int_attr(ds.get(), format::kAttrSplitCases, path + ":/" + name);
    split.class_voxels = h5::read_ints_attr(ds.get(), format::kAttrSplitClassVoxels, path + ":/" + name);
    if (static_cast<int64_t>(split.class_voxels.size()) != classes) {
      STRATA_THROW(DataError, "{}: /{} attribute '{}' must hold {} counts", path, name,
                   format::kAttrSplitClassVoxels, classes);
    }
    std::set<int32_t> split_cases;
    for (size_t k = 0; k < split.slices.size(); ++k) {
      int64_t i = split.slices[k];
      if (i < 0 || i >= n || (k > 0 && i <= split.slices[k - 1])) {
        STRATA_THROW(DataError, "{}: /{} must hold ascending slice indices in [0, {}), has {} at position {}",
                     path, name, n, i, k);
      }
      int32_t c = slice_case[static_cast<size_t>(i)];
      int& owner = split_of_case[static_cast<size_t>(c)];
      if (owner >= 0 && owner != static_cast<int>(s)) {
        STRATA_THROW(DataError, "{}: case {} has slices in both '{}' and '{}'; splits must be by case", path,
                     cases[static_cast<size_t>(c)], names[static_cast<size_t>(owner)], split.name);
      }
      owner = static_cast<int>(s);
      split_cases.insert(c);
    }
    if (static_cast<int64_t>(split_cases.size()) != split.cases) {
      STRATA_THROW(DataError, "{}: /{} records {} cases but its slices come from {}", path, name, split.cases,
                   split_cases.size());
    }
    splits.push_back(std::move(split));
  }
}

// The folds, checked against the splits as stored; with data.fold k, "train" and "val"
// re-made from them: the split slices of fold k's cases in val, of the other folds' in
// train (FORMAT.md, "Folds").
void SliceStore::Impl::select_fold(int64_t want) {
  folds = packed::read_case_folds(file.get(), path, cases, classes);
  info.folds = folds.folds;
  packed::SplitsOfCases stored{packed::names_of(splits), {}, split_of_case};
  for (const auto& s : splits) stored.class_voxels.push_back(s.class_voxels);
  packed::check_case_folds(folds, stored, cases, path);
  if (want < 0) return;
  packed::check_fold_wanted(folds, want, path);
  folds.val_fold = want;
  SplitInfo train{format::kTrainSplit, {}, 0, {}}, val{format::kValSplit, {}, 0, {}};
  std::set<int64_t> train_cases, val_cases;
  for (const auto& s : splits) {
    for (int64_t i : s.slices) {
      const int32_t c = slice_case[static_cast<size_t>(i)];
      const int32_t f = folds.fold_of[static_cast<size_t>(c)];
      if (f < 0) continue;  // test stays as stored
      (f == want ? val : train).slices.push_back(i);
      (f == want ? val_cases : train_cases).insert(c);
    }
  }
  for (auto [split, in] : {std::pair{&train, &train_cases}, std::pair{&val, &val_cases}}) {
    std::sort(split->slices.begin(), split->slices.end());
    split->cases = static_cast<int64_t>(in->size());
    split->class_voxels = packed::class_voxels_of_cases(folds, {in->begin(), in->end()}, classes);
  }
  packed::replace_split(splits, std::move(train));
  packed::replace_split(splits, std::move(val));
}

// Looks every slice's chunk up by its coordinates (the chunk index's keys), checks
// that the index holds no other chunk and that no two chunks share bytes, and keeps
// where each lies for direct reads.
ChunkTable SliceStore::Impl::chunk_table(hid_t dataset, const char* name, uint64_t payload) const {
  ChunkTable table;
  table.payload = payload;
  table.stored = payload + (info.checksums ? 4 : 0);
  table.offset.resize(static_cast<size_t>(n));
  table.size.resize(static_cast<size_t>(n));
  // HDF5 addresses are relative to the base address, which a user block shifts.
  h5::Handle fcpl = h5::make<DataError>(H5Fget_create_plist(file.get()), H5Pclose, path);
  hsize_t userblock = 0;
  H5Pget_userblock(fcpl.get(), &userblock);
  auto rank = h5::dims_of(dataset).size();
  std::vector<hsize_t> coord(rank, 0);
  for (int64_t i = 0; i < n; ++i) {
    coord[0] = static_cast<hsize_t>(i);
    unsigned mask = 0;
    haddr_t addr = HADDR_UNDEF;
    hsize_t size = 0;
    h5::check<DataError>(H5Dget_chunk_info_by_coord(dataset, coord.data(), &mask, &addr, &size),
                         fmt::format("{}: locating the chunk of /{} {}", path, name, describe(i)));
    if (size == 0 || addr == HADDR_UNDEF) {
      STRATA_THROW(DataError, "{}: the chunk index of /{} has no entry for {} (never written, or the index is "
                   "damaged; HDF5 would read it as zeros): the file is corrupt; repack it", path, name, describe(i));
    }
    // Files h5repack recompressed have chunks of any size; HDF5 decodes those.
    if (direct_possible && (mask != 0 || size != table.stored)) {
      STRATA_THROW(DataError, "{}: /{} {} is stored in {} bytes with filter mask {}, expected {} bytes", path, name,
                   describe(i), size, mask, table.stored);
    }
    uint64_t offset = userblock + addr;
    if (offset + size > static_cast<uint64_t>(file_bytes)) {
      STRATA_THROW(DataError, "{}: truncated: /{} {} lies at bytes {}..{} but the file has {} bytes", path, name,
                   describe(i), offset, offset + size, file_bytes);
    }
    table.offset[static_cast<size_t>(i)] = offset;
    table.size[static_cast<size_t>(i)] = size;
  }
  check_chunk_count(dataset, name);
  check_no_overlap(table, name);
  return table;
}

void SliceStore::Impl::check_chunk_count(hid_t dataset, const char* name) const {
  h5::Handle space = h5::make<DataError>(H5Dget_space(dataset), H5Sclose, path);
  hsize_t chunks = 0;
  h5::check<DataError>(H5Dget_num_chunks(dataset, space.get(), &chunks),
                       fmt::format("{}: counting the chunks of /{}", path, name));
  if (static_cast<int64_t>(chunks) != n) {
    STRATA_THROW(DataError, "{}: the chunk index of /{} holds {} chunks for {} slices: the index is damaged; the file "
                 "is corrupt; repack it", path, name, chunks, n);
  }
}

// Two index entries pointing at the same bytes would serve one slice's data as
// another's, with a valid checksum.
void SliceStore::Impl::check_no_overlap(const ChunkTable& table, const char* name) const {
  std::vector<std::pair<uint64_t, int64_t>> order;
  for (int64_t i = 0; i < n; ++i) order.emplace_back(table.offset[static_cast<size_t>(i)], i);
  std::sort(order.begin(), order.end());
  for (size_t k = 1; k < order.size(); ++k) {
    const auto [prev_offset, prev] = order[k - 1];
    if (order[k].first < prev_offset + table.size[static_cast<size_t>(prev)]) {
      STRATA_THROW(DataError, "{}: the chunk index of /{} places {} and {} in the same bytes (from byte {}): the index "
                   "is damaged; the file is corrupt; repack it", path, name, describe(prev), describe(order[k].second),
                   order[k].first);
    }
  }
}

void SliceStore::Impl::read_direct(const ChunkTable& table, const char* name, const int64_t* idx, int64_t count,
                                   unsigned char* dest) const {
  const bool checksums = info.checksums;
  // Visit the requested chunks in file order so back-to-back chunks share one preadv;
  // a negative index (a context read's missing neighbour) is zeros.
  std::vector<std::pair<uint64_t, int64_t>> order;
  order.reserve(static_cast<size_t>(count));
  for (int64_t k = 0; k < count; ++k) {
    if (idx[k] < 0) std::memset(dest + k * table.payload, 0, table.payload);
    else order.emplace_back(table.offset[static_cast<size_t>(idx[k])], k);
  }
  std::sort(order.begin(), order.end());
  std::vector<unsigned char> trailers(checksums ? static_cast<size_t>(4 * count) : 0);
  std::vector<iovec> iov;
  iov.reserve(std::min<size_t>(kMaxIov, static_cast<size_t>(2 * count)));
  const size_t per_chunk = checksums ? 2 : 1;

  for (size_t k = 0; k < order.size();) {
    const uint64_t start = order[k].first;
    uint64_t next = start;
    size_t end = k;
    iov.clear();
    while (end < order.size() && order[end].first == next && iov.size() + per_chunk <= kMaxIov) {
      int64_t pos = order[end].second;
      iov.push_back({dest + pos * table.payload, table.payload});
      if (checksums) iov.push_back({trailers.data() + 4 * pos, 4});
      next += table.stored;
      ++end;
    }
    // preadv may return short; continue where it stopped.
    size_t first = 0;
    uint64_t offset = start;
    while (first < iov.size()) {
      ssize_t got = ::preadv(fd, iov.data() + first, static_cast<int>(iov.size() - first), static_cast<off_t>(offset));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        STRATA_THROW(DataError, "{}: reading /{} {} at byte {}: {}", path, name, describe(idx[order[k].second]),
                     offset, got < 0 ? std::strerror(errno) : "unexpected end of file (truncated?)");
      }
      offset += static_cast<uint64_t>(got);
      auto left = static_cast<size_t>(got);
      while (first < iov.size() && left >= iov[first].iov_len) left -= iov[first++].iov_len;
      if (left > 0) {
        iov[first].iov_base = static_cast<unsigned char*>(iov[first].iov_base) + left;
        iov[first].iov_len -= left;
      }
    }
    k = end;
  }
  if (!checksums) return;
  for (int64_t k = 0; k < count; ++k) {
    if (idx[k] < 0) continue;
    uint32_t want = stored_fletcher32(trailers.data() + 4 * k);
    uint32_t got = fletcher32(dest + k * table.payload, table.payload);
    if (want != got) {
      STRATA_THROW(DataError, "{}: Fletcher-32 checksum mismatch in /{} {} (stored {:08x}, computed {:08x}): the "
                   "file is corrupt", path, name, describe(idx[k]), want, got);
    }
  }
}

void SliceStore::Impl::read_hdf5(hid_t dataset, hid_t mem_type, const char* name, uint64_t payload,
                                 const int64_t* idx, int64_t count, unsigned char* dest) const {
  h5::Lock lock;
  h5::Handle space = h5::make<DataError>(H5Dget_space(dataset), H5Sclose, path);
  std::vector<hsize_t> dims = h5::dims_of(dataset);
  std::vector<hsize_t> start(dims.size(), 0), extent = dims;
  // Reads `run` slices from request position k; on failure returns HDF5's error text,
  // taken before any other HDF5 call (each one clears the error stack).
  auto read_run = [&](int64_t k, int64_t run) -> std::optional<std::string> {
    start[0] = static_cast<hsize_t>(idx[k]);
    extent[0] = static_cast<hsize_t>(run);
    H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, extent.data(), nullptr);
    hid_t mem = H5Screate_simple(static_cast<int>(extent.size()), extent.data(), nullptr);
    herr_t status = H5Dread(dataset, mem_type, mem, space.get(), H5P_DEFAULT, dest + k * payload);
    std::optional<std::string> why;
    if (status < 0) why = h5::error_text();
    H5Sclose(mem);
    return why;
  };
  for (int64_t k = 0; k < count;) {
    if (idx[k] < 0) {  // a context read's missing neighbour: zeros
      std::memset(dest + k * payload, 0, payload);
      ++k;
      continue;
    }
    int64_t run = 1;
    while (k + run < count && idx[k + run] == idx[k] + run) ++run;
    if (std::optional<std::string> why = read_run(k, run)) {
      // Name the slice: retry the run one slice at a time to find the failing one.
      for (int64_t j = k; j < k + run && run > 1; ++j) {
        if (std::optional<std::string> one = read_run(j, 1)) {
          why = one;
          k = j;
          break;
        }
      }
      STRATA_THROW(DataError, "{}: reading /{} {}: {}", path, name, describe(idx[k]),
                   why->empty() ? "HDF5 read failed" : *why);
    }
    k += run;
  }
}

void SliceStore::Impl::check_labels(const uint8_t* labels, const int64_t* idx, int64_t count) const {
  const auto plane = static_cast<size_t>(h * w);
  const int64_t top = classes - 1;  // the largest valid label
  for (int64_t k = 0; k < count; ++k) {
    const uint8_t* p = labels + static_cast<size_t>(k) * plane;
    uint8_t most = 0;
    for (size_t i = 0; i < plane; ++i) most = std::max(most, p[i]);  // one vectorised pass
    if (most > top) {
      STRATA_THROW(DataError, "{}: /{} {} holds label {}, outside the label map 0..{}", path, format::kLabels,
                   describe(idx[k]), *std::find_if(p, p + plane, [&](uint8_t v) { return v > top; }), top);
    }
  }
}

SliceStore::SliceStore(std::string path, SliceStoreOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->path = std::move(path);
  impl_->open(options);
}

SliceStore::~SliceStore() = default;

const std::string& SliceStore::path() const { return impl_->path; }
ReadPath SliceStore::read_path() const { return impl_->read_path; }
const StoreInfo& SliceStore::info() const { return impl_->info; }
int64_t SliceStore::file_bytes() const { return impl_->file_bytes; }
int64_t SliceStore::num_slices() const { return impl_->n; }
int64_t SliceStore::height() const { return impl_->h; }
int64_t SliceStore::width() const { return impl_->w; }
int64_t SliceStore::channels() const { return impl_->channels * impl_->context; }
int64_t SliceStore::stored_channels() const { return impl_->channels; }
int64_t SliceStore::context() const { return impl_->context; }
int64_t SliceStore::num_classes() const { return impl_->classes; }
int64_t SliceStore::image_bytes() const { return 2 * channels() * impl_->h * impl_->w; }

std::vector<std::string> SliceStore::channel_names() const {
  const auto& names = impl_->info.modalities;
  if (impl_->context == 1) return names;
  std::vector<std::string> out;
  const int64_t r = (impl_->context - 1) / 2;
  for (int64_t d = -r; d <= r; ++d) {
    for (const auto& m : names) out.push_back(d == 0 ? m + "@z" : fmt::format("{}@z{:+d}", m, d));
  }
  return out;
}
int64_t SliceStore::label_bytes() const { return impl_->h * impl_->w; }
int64_t SliceStore::num_cases() const { return static_cast<int64_t>(impl_->cases.size()); }
const std::vector<std::string>& SliceStore::case_names() const { return impl_->cases; }

bool SliceStore::has_case_sources() const { return !impl_->sources.empty(); }

const CaseSource& SliceStore::case_source(int32_t c) const {
  if (impl_->sources.empty()) {
    STRATA_THROW(DataError, "{}: format version {} records no source geometry per case, which mapping back to the "
                 "original volumes needs; repack it with this build's `brats_recipe pack` (format version {})",
                 impl_->path, impl_->info.format_version, format::kFormatVersion);
  }
  STRATA_CHECK(c >= 0 && c < static_cast<int32_t>(impl_->sources.size()), "case {} of {}", c, impl_->sources.size());
  return impl_->sources[static_cast<size_t>(c)];
}
const std::vector<int32_t>& SliceStore::slice_cases() const { return impl_->slice_case; }
const std::vector<int32_t>& SliceStore::slice_z() const { return impl_->slice_z; }
std::string SliceStore::describe_slice(int64_t slice) const { return impl_->describe(slice); }

std::vector<int32_t> SliceStore::cases_of(const std::vector<int64_t>& slices) const {
  std::vector<int32_t> out;
  out.reserve(slices.size());
  for (int64_t i : slices) {
    STRATA_CHECK_AS(DataError, i >= 0 && i < impl_->n, "{}: slice index {} is out of range (the file has {} slices)",
                    impl_->path, i, impl_->n);
    out.push_back(case_of(i));
  }
  return out;
}

const CaseFoldTable& SliceStore::folds() const { return impl_->folds; }

std::vector<std::string> SliceStore::split_names() const { return packed::names_of(impl_->splits); }

const SplitInfo& SliceStore::split_info(const std::string& name) const {
  return packed::find_split(impl_->splits, impl_->path, name);
}

void SliceStore::read(const int64_t* indices, int64_t n, c10::Half* images, uint8_t* labels) const {
  const Impl& m = *impl_;
  for (int64_t k = 0; k < n; ++k) {
    if (indices[k] < 0 || indices[k] >= m.n) {
      STRATA_THROW(DataError, "{}: slice index {} is out of range (the file has {} slices)", m.path, indices[k], m.n);
    }
  }
  if (n == 0) return;
  // With a context, the images are the stored slices of every neighbour, in channel order.
  std::vector<int64_t> stored;
  if (images && m.context > 1) stored = m.with_neighbours(indices, n);
  const int64_t* image_idx = stored.empty() ? indices : stored.data();
  const int64_t image_n = stored.empty() ? n : n * m.context;
  auto* image_dest = reinterpret_cast<unsigned char*>(images);
  if (m.read_path == ReadPath::kDirect) {
    if (images) m.read_direct(m.image_chunks, format::kImages, image_idx, image_n, image_dest);
    if (labels) m.read_direct(m.label_chunks, format::kLabels, indices, n, labels);
  } else {
    if (images) {
      m.read_hdf5(m.images.get(), m.half_type.get(), format::kImages, m.image_chunks.payload, image_idx, image_n,
                  image_dest);
    }
    if (labels) {
      m.read_hdf5(m.labels.get(), H5T_NATIVE_UINT8, format::kLabels, static_cast<uint64_t>(label_bytes()), indices,
                  n, labels);
    }
  }
  if (labels) m.check_labels(labels, indices, n);
}

void SliceStore::read_into(const std::vector<int64_t>& indices, at::Tensor images, at::Tensor labels) const {
  const auto n = static_cast<int64_t>(indices.size());
  auto check = [&](const at::Tensor& t, at::IntArrayRef shape, at::ScalarType a, at::ScalarType b, const char* what) {
    STRATA_CHECK(t.device().is_cpu() && t.is_contiguous() && t.sizes() == shape &&
                     (t.scalar_type() == a || t.scalar_type() == b),
                 "read_into: {} must be a contiguous CPU {} or {} tensor of shape {}, got {} {} {}", what,
                 c10::toString(a), c10::toString(b), shape, t.device().str(), c10::toString(t.scalar_type()),
                 t.sizes());
  };
  at::Tensor half, bytes;
  c10::Half* image_ptr = nullptr;
  uint8_t* label_ptr = nullptr;
  if (images.defined()) {
    check(images, {n, channels(), height(), width()}, at::kHalf, at::kFloat, "images");
    half = images.scalar_type() == at::kHalf ? images : at::empty(images.sizes(), images.options().dtype(at::kHalf));
    image_ptr = half.data_ptr<c10::Half>();
  }
  if (labels.defined()) {
    check(labels, {n, height(), width()}, at::kByte, at::kLong, "labels");
    bytes = labels.scalar_type() == at::kByte ? labels : at::empty(labels.sizes(), labels.options().dtype(at::kByte));
    label_ptr = bytes.data_ptr<uint8_t>();
  }
  read(indices.data(), n, image_ptr, label_ptr);
  if (images.defined() && !half.is_same(images)) images.copy_(half);
  if (labels.defined() && !bytes.is_same(labels)) labels.copy_(bytes);
}

VerifyReport SliceStore::verify(const std::function<void(int64_t, int64_t)>& progress) const {
  const Impl& m = *impl_;
  core::Stopwatch clock;
  VerifyReport report;
  report.metadata_checksum = m.info.format_version >= format::kFirstChecksummedVersion;
  report.index_entries = 2 * m.n;
  report.folds = m.folds.folds > 0;
  // Per case over its split slices, as /case_class_voxels counts (files with folds).
  std::vector<int64_t> case_counts(report.folds ? m.cases.size() * static_cast<size_t>(m.classes) : 0, 0);
  std::vector<int> split_of(static_cast<size_t>(m.n), -1);
  for (size_t s = 0; s < m.splits.size(); ++s) {
    for (int64_t i : m.splits[s].slices) split_of[static_cast<size_t>(i)] = static_cast<int>(s);
  }
  std::vector<std::vector<int64_t>> counts(m.splits.size(), std::vector<int64_t>(static_cast<size_t>(m.classes)));
  const auto stored_bytes = static_cast<int64_t>(2 * m.channels * m.h * m.w);  // one stored slice, whatever the context
  std::vector<c10::Half> image(static_cast<size_t>(stored_bytes / 2));
  std::vector<uint8_t> label(static_cast<size_t>(label_bytes()));
  for (int64_t i = 0; i < m.n; ++i) {
    m.read_hdf5(m.images.get(), m.half_type.get(), format::kImages, static_cast<uint64_t>(stored_bytes), &i, 1,
                reinterpret_cast<unsigned char*>(image.data()));
    m.read_hdf5(m.labels.get(), H5T_NATIVE_UINT8, format::kLabels, static_cast<uint64_t>(label_bytes()), &i, 1,
                label.data());
    m.check_labels(label.data(), &i, 1);
    if (split_of[static_cast<size_t>(i)] >= 0) {
      auto& c = counts[static_cast<size_t>(split_of[static_cast<size_t>(i)])];
      for (uint8_t v : label) ++c[v];
      if (report.folds) {
        const auto row = static_cast<size_t>(m.slice_case[static_cast<size_t>(i)] * m.classes);
        for (uint8_t v : label) ++case_counts[row + v];
      }
    }
    report.chunks += 2;
    report.bytes += stored_bytes + label_bytes();
    if (progress) progress(i + 1, m.n);
  }
  packed::check_class_counts(m.splits, counts, m.path, "pixel");
  packed::check_case_class_voxels(m.folds, case_counts, m.cases, m.path, "pixel");
  report.seconds = clock.seconds();
  return report;
}

}  // namespace strata::data
