// VolumeStore: validation on open, box reads by hyperslab, whole-case reads and
// verification (see volume_store.h).
#include "strata/data/volume_store.h"

#include "strata/data/shard_sampler.h"

#include "packed_file.h"
#include "strata/core/error.h"
#include "strata/core/timer.h"
#include "strata/data/format.h"
#include "strata/data/h5.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <set>

namespace strata::data {

using core::DataError;

namespace {

// The part of a box inside a volume of `shape`: [lo, hi) per axis, empty when any hi <= lo.
struct Overlap {
  Index3 lo{}, hi{};
  bool empty() const { return hi[0] <= lo[0] || hi[1] <= lo[1] || hi[2] <= lo[2]; }
};

Overlap overlap(const Index3& shape, const Index3& origin, const Index3& size) {
  Overlap o;
  for (size_t a = 0; a < 3; ++a) {
    o.lo[a] = std::clamp<int64_t>(origin[a], 0, shape[a]);
    o.hi[a] = std::clamp<int64_t>(origin[a] + size[a], 0, shape[a]);
  }
  return o;
}

int64_t volume_of(const Index3& s) { return s[0] * s[1] * s[2]; }

}  // namespace

struct VolumeStore::Impl {
  std::string path;
  StoreInfo info;
  int64_t channels = 0, classes = 0;
  std::vector<VolumeCase> cases;
  std::vector<VolumeSplit> splits;
  std::vector<int> split_of_case;  // [cases]: index into `splits` as stored (-1: in none)
  CaseFoldTable folds;             // the file's folds (none: folds 0)
  std::vector<std::vector<std::vector<std::array<int32_t, 3>>>> locations;  // [case][class]
  h5::Handle file, half;
  std::vector<h5::Handle> images, labels;  // per case; a label handle is invalid without a seg

  ~Impl() {
    h5::Lock lock;  // handles close under the lock
    images.clear();
    labels.clear();
    half.reset();
    file.reset();
  }

  std::string describe(int64_t c) const {
    if (c < 0 || c >= static_cast<int64_t>(cases.size())) return fmt::format("case {}", c);
    return fmt::format("case {} ({})", c, cases[static_cast<size_t>(c)].name);
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& c : cases) out.push_back(c.name);
    return out;
  }
  static std::string object(int64_t c, const char* name) { return fmt::format("{}/{}/{}", format::kCases, c, name); }

  void open(const VolumeStoreOptions& options);
  void read_format();
  void read_info();
  void read_cases();
  void open_case(int64_t c);
  void check_dataset(hid_t ds, int64_t c, const char* name, H5T_class_t cls, size_t bytes, std::vector<hsize_t> dims);
  void read_locations(int64_t c);
  void read_splits();
  void select_fold(int64_t want);
  void read_region(hid_t ds, hid_t mem_type, int64_t c, const char* name, const Overlap& o, const Index3& origin,
                   const Index3& size, int64_t channels, void* dest) const;
  void check_labels(int64_t c, const uint8_t* label, int64_t n) const;
  void check_locations(int64_t c, const uint8_t* label) const;
};

void VolumeStore::Impl::open(const VolumeStoreOptions& options) {
  file = packed::open_file(path, "the packed volume file (data.path)");
  h5::Lock lock;
  read_format();
  packed::check_metadata_checksum(file.get(), path, info.format_version);
  read_info();
  half = h5::float16_type();
  read_cases();
  for (int64_t c = 0; c < static_cast<int64_t>(cases.size()); ++c) open_case(c);
  read_splits();
  select_fold(options.fold);
}

// The format name first: a slice file is refused by name, before its layout is read.
void VolumeStore::Impl::read_format() {
  if (!h5::has_attr(file.get(), format::kAttrFormat) || !h5::has_attr(file.get(), format::kAttrVersion)) {
    STRATA_THROW(DataError, "{}: not a Strata packed file (no root attributes '{}' and '{}'); pack one with "
                 "`brats_recipe pack --volumes`", path, format::kAttrFormat, format::kAttrVersion);
  }
  info.format = h5::read_string_attr(file.get(), format::kAttrFormat, path);
  if (packed::ends_with(info.format, format::kFormatSuffix)) {
    STRATA_THROW(DataError, "{}: a file of packed slices ('{}' is '{}'), not of volumes: 3D tasks read volume files; "
                 "pack one with `brats_recipe pack --volumes`", path, format::kAttrFormat, info.format);
  }
  if (info.format.rfind(format::kFormatPrefix, 0) != 0 || !packed::ends_with(info.format, format::kVolumeFormatSuffix)) {
    STRATA_THROW(DataError, "{}: not a Strata volume file (root attribute '{}' is '{}', not '{}<content>{}')", path,
                 format::kAttrFormat, info.format, format::kFormatPrefix, format::kVolumeFormatSuffix);
  }
  info.format_version = h5::read_int_attr(file.get(), format::kAttrVersion, path);
  if (info.format_version < 1 || info.format_version > format::kVolumeFormatVersion) {
    STRATA_THROW(DataError, "{}: volume format version {}, but this Strata reads versions 1 to {}; repack it with "
                 "this build's `brats_recipe pack --volumes`", path, info.format_version,
                 format::kVolumeFormatVersion);
  }
}

void VolumeStore::Impl::read_info() {
  classes = packed::read_label_map(file.get(), path, info);
  channels = static_cast<int64_t>(info.modalities.size());
  STRATA_CHECK_AS(DataError, channels >= 1, "{}: root attribute '{}' names no channel", path,
                  format::kAttrModalities);
  packed::read_provenance(file.get(), path, info);
  info.split_method = h5::read_string_attr(file.get(), format::kAttrSplitMethod, path);
}

// Names, source geometry and crop boxes, one row per case.
void VolumeStore::Impl::read_cases() {
  const std::vector<std::string> names = packed::read_fixed_names(file.get(), path, format::kCaseNames);
  packed::check_unique_names(names, path);
  const auto n = static_cast<int64_t>(names.size());
  auto rows = [&](const char* name, std::vector<int64_t> shape) {
    return packed::read_array<double>(file.get(), path, name, H5T_NATIVE_DOUBLE, shape);
  };
  auto dims = rows(format::kCaseDims, {n, 3}), spacing = rows(format::kCaseSpacing, {n, 3});
  auto codes = rows(format::kCaseXformCodes, {n, 2}), qform = rows(format::kCaseQform, {n, 4, 4});
  auto sform = rows(format::kCaseSform, {n, 4, 4}), lo = rows(format::kCaseCropLo, {n, 3});
  auto shape = rows(format::kCaseShape, {n, 3});
  cases.resize(names.size());
  for (size_t c = 0; c < cases.size(); ++c) {
    VolumeCase& v = cases[c];
    v.name = names[c];
    VolumeSource& s = v.source;
    for (size_t a = 0; a < 3; ++a) {
      s.dims[a] = static_cast<int64_t>(dims[3 * c + a]);
      s.spacing[a] = spacing[3 * c + a];
      s.crop_lo[a] = static_cast<int64_t>(lo[3 * c + a]);
      v.shape[a] = static_cast<int64_t>(shape[3 * c + a]);
    }
    s.qform_code = static_cast<int>(codes[2 * c]);
    s.sform_code = static_cast<int>(codes[2 * c + 1]);
    std::copy_n(qform.begin() + static_cast<std::ptrdiff_t>(16 * c), 16, s.qform.begin());
    std::copy_n(sform.begin() + static_cast<std::ptrdiff_t>(16 * c), 16, s.sform.begin());
    for (size_t a = 0; a < 3; ++a) {  // crop_lo and shape are (k, j, i); dims (nx, ny, nz)
      const int64_t extent = s.dims[2 - a];
      if (v.shape[a] < 1 || s.crop_lo[a] < 0 || s.crop_lo[a] + v.shape[a] > extent) {
        STRATA_THROW(DataError, "{}: {} has a crop box from ({}) of size ({}) outside its source of {}x{}x{} "
                     "voxels: the file is corrupt; repack it", path, describe(static_cast<int64_t>(c)),
                     fmt::join(s.crop_lo, ", "), fmt::join(v.shape, ", "), s.dims[0], s.dims[1], s.dims[2]);
      }
    }
  }
}

void VolumeStore::Impl::check_dataset(hid_t ds, int64_t c, const char* name, H5T_class_t cls, size_t bytes,
                                      std::vector<hsize_t> dims) {
  h5::Handle type = h5::make<DataError>(H5Dget_type(ds), H5Tclose, path);
  if (H5Tget_class(type.get()) != cls || H5Tget_size(type.get()) != bytes || h5::dims_of(ds) != dims) {
    STRATA_THROW(DataError, "{}: /{} of {} must be a {}-byte {} array of shape [{}], has shape [{}]", path,
                 object(c, name), describe(c), bytes, cls == H5T_FLOAT ? "float" : "integer", fmt::join(dims, ", "),
                 fmt::join(h5::dims_of(ds), ", "));
  }
  h5::Handle dcpl = h5::make<DataError>(H5Dget_create_plist(ds), H5Pclose, path);
  bool fletcher = false;
  for (int f = 0; f < H5Pget_nfilters(dcpl.get()); ++f) {
    unsigned flags = 0;
    size_t nelmts = 0;
    fletcher |= H5Pget_filter2(dcpl.get(), static_cast<unsigned>(f), &flags, &nelmts, nullptr, 0, nullptr,
                               nullptr) == H5Z_FILTER_FLETCHER32;
  }
  if (H5Pget_layout(dcpl.get()) != H5D_CHUNKED) {
    STRATA_THROW(DataError, "{}: /{} of {} must be chunked", path, object(c, name), describe(c));
  }
  if (c == 0 && std::strcmp(name, format::kCaseImage) == 0) info.checksums = fletcher;
  STRATA_CHECK_AS(DataError, fletcher == info.checksums, "{}: /{} of {} {} Fletcher-32 checksums but /{} {}", path,
                  object(c, name), describe(c), fletcher ? "has" : "lacks", object(0, format::kCaseImage),
                  info.checksums ? "has them" : "does not");
}

void VolumeStore::Impl::open_case(int64_t c) {
  const VolumeCase& v = cases[static_cast<size_t>(c)];
  std::vector<hsize_t> dims = {static_cast<hsize_t>(v.shape[0]), static_cast<hsize_t>(v.shape[1]),
                               static_cast<hsize_t>(v.shape[2])};
  std::vector<hsize_t> image_dims = dims;
  image_dims.insert(image_dims.begin(), static_cast<hsize_t>(channels));
  images.push_back(packed::open_dataset(file.get(), path, object(c, format::kCaseImage)));
  check_dataset(images.back().get(), c, format::kCaseImage, H5T_FLOAT, 2, image_dims);
  labels.emplace_back();
  locations.emplace_back(static_cast<size_t>(classes));
  if (H5Lexists(file.get(), object(c, format::kCaseLabel).c_str(), H5P_DEFAULT) <= 0) {
    h5::error_text();
    return;  // no seg: a case for prediction only
  }
  cases[static_cast<size_t>(c)].has_labels = true;
  labels.back() = packed::open_dataset(file.get(), path, object(c, format::kCaseLabel));
  check_dataset(labels.back().get(), c, format::kCaseLabel, H5T_INTEGER, 1, dims);
  read_locations(c);
}

// Class k's locations: int32 [n, 3], n <= kMaxClassLocations, each inside the volume.
void VolumeStore::Impl::read_locations(int64_t c) {
  const Index3& shape = cases[static_cast<size_t>(c)].shape;
  for (int64_t k = 1; k < classes; ++k) {
    const std::string name = fmt::format("{}/{}", object(c, format::kCaseClassLocations), k);
    h5::Handle ds = packed::open_dataset(file.get(), path, name);
    const std::vector<hsize_t> dims = h5::dims_of(ds.get());
    if (dims.size() != 2 || dims[1] != 3 || dims[0] > static_cast<hsize_t>(kMaxClassLocations)) {
      STRATA_THROW(DataError, "{}: /{} of {} must have shape [n <= {}, 3], has [{}]", path, name, describe(c),
                   kMaxClassLocations, fmt::join(dims, ", "));
    }
    auto& out = locations[static_cast<size_t>(c)][static_cast<size_t>(k)];
    out = std::vector<std::array<int32_t, 3>>(dims[0]);
    if (!out.empty()) {
      h5::check<DataError>(H5Dread(ds.get(), H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()),
                           fmt::format("{}: reading /{} of {}", path, name, describe(c)));
    }
    for (const auto& p : out) {
      if (p[0] < 0 || p[0] >= shape[0] || p[1] < 0 || p[1] >= shape[1] || p[2] < 0 || p[2] >= shape[2]) {
        STRATA_THROW(DataError, "{}: /{} of {} holds ({}), outside the volume of ({}): the file is corrupt; repack it",
                     path, name, describe(c), fmt::join(p, ", "), fmt::join(shape, ", "));
      }
    }
  }
}

void VolumeStore::Impl::read_splits() {
  std::vector<int>& split_of = split_of_case;
  split_of.assign(cases.size(), -1);
  const auto n = static_cast<int64_t>(cases.size());
  for (const std::string& name : packed::split_names(file.get(), path)) {
    const std::string object = fmt::format("{}/{}", format::kSplits, name);
    h5::Handle ds = packed::open_dataset(file.get(), path, object);
    auto dims = h5::dims_of(ds.get());
    if (dims.size() != 1) STRATA_THROW(DataError, "{}: dataset /{} must be a list of case indices", path, object);
    VolumeSplit split;
    split.name = name;
    split.cases = packed::read_array<int64_t>(file.get(), path, object, H5T_NATIVE_INT64,
                                              {static_cast<int64_t>(dims[0])});
    split.class_voxels = h5::read_ints_attr(ds.get(), format::kAttrSplitClassVoxels, path + ":/" + object);
    STRATA_CHECK_AS(DataError, static_cast<int64_t>(split.class_voxels.size()) == classes,
                    "{}: /{} attribute '{}' must hold {} counts", path, object, format::kAttrSplitClassVoxels, classes);
    for (size_t k = 0; k < split.cases.size(); ++k) {
      const int64_t c = split.cases[k];
      if (c < 0 || c >= n || (k > 0 && c <= split.cases[k - 1])) {
        STRATA_THROW(DataError, "{}: /{} must hold ascending case indices in [0, {}), has {} at position {}", path,
                     object, n, c, k);
      }
      int& owner = split_of[static_cast<size_t>(c)];
      if (owner >= 0) {
        STRATA_THROW(DataError, "{}: {} is in both '{}' and '{}'; splits must be by case", path, describe(c),
                     splits[static_cast<size_t>(owner)].name, name);
      }
      owner = static_cast<int>(splits.size());
    }
    splits.push_back(std::move(split));
  }
}

// The folds, checked against the splits as stored; with data.fold k, "train" and "val"
// re-made from them (FORMAT.md, "Folds").
void VolumeStore::Impl::select_fold(int64_t want) {
  const std::vector<std::string> names = this->names();
  folds = packed::read_case_folds(file.get(), path, names, classes);
  info.folds = folds.folds;
  packed::SplitsOfCases stored{packed::names_of(splits), {}, split_of_case};
  for (const auto& s : splits) stored.class_voxels.push_back(s.class_voxels);
  packed::check_case_folds(folds, stored, names, path);
  if (want < 0) return;
  packed::check_fold_wanted(folds, want, path);
  folds.val_fold = want;
  VolumeSplit train{format::kTrainSplit, {}, {}}, val{format::kValSplit, {}, {}};
  for (size_t c = 0; c < cases.size(); ++c) {
    const int32_t f = folds.fold_of[c];
    if (f < 0 || split_of_case[c] < 0) continue;  // test (and a case in no split) stay as stored
    (f == want ? val : train).cases.push_back(static_cast<int64_t>(c));
  }
  for (VolumeSplit* split : {&train, &val}) split->class_voxels = packed::class_voxels_of_cases(folds, split->cases, classes);
  packed::replace_split(splits, std::move(train));
  packed::replace_split(splits, std::move(val));
}

// Reads the part `o` of a box at `origin` of `size` into `dest` (laid out as the whole
// box, `channels` leading when > 0) through one hyperslab on each side.
void VolumeStore::Impl::read_region(hid_t ds, hid_t mem_type, int64_t c, const char* name, const Overlap& o,
                                    const Index3& origin, const Index3& size, int64_t channels, void* dest) const {
  std::vector<hsize_t> start, count, mem_start, mem_dims;
  if (channels > 0) start = {0}, count = {static_cast<hsize_t>(channels)}, mem_start = {0}, mem_dims = count;
  for (size_t a = 0; a < 3; ++a) {
    start.push_back(static_cast<hsize_t>(o.lo[a]));
    count.push_back(static_cast<hsize_t>(o.hi[a] - o.lo[a]));
    mem_start.push_back(static_cast<hsize_t>(o.lo[a] - origin[a]));
    mem_dims.push_back(static_cast<hsize_t>(size[a]));
  }
  h5::Handle space = h5::make<DataError>(H5Dget_space(ds), H5Sclose, path);
  h5::Handle mem = h5::make<DataError>(H5Screate_simple(static_cast<int>(mem_dims.size()), mem_dims.data(), nullptr),
                                       H5Sclose, path);
  H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
  H5Sselect_hyperslab(mem.get(), H5S_SELECT_SET, mem_start.data(), nullptr, count.data(), nullptr);
  if (H5Dread(ds, mem_type, mem.get(), space.get(), H5P_DEFAULT, dest) < 0) {
    const std::string why = h5::error_text();
    STRATA_THROW(DataError, "{}: reading /{} of {}, voxels [{}, {}) x [{}, {}) x [{}, {}): {}", path, object(c, name),
                 describe(c), o.lo[0], o.hi[0], o.lo[1], o.hi[1], o.lo[2], o.hi[2],
                 why.empty() ? "HDF5 read failed" : why);
  }
}

void VolumeStore::Impl::check_labels(int64_t c, const uint8_t* label, int64_t n) const {
  const uint8_t most = n > 0 ? *std::max_element(label, label + n) : 0;
  if (most >= classes) {
    STRATA_THROW(DataError, "{}: /{} of {} holds label {}, outside the label map 0..{}", path,
                 object(c, format::kCaseLabel), describe(c), most, classes - 1);
  }
}

// Every recorded location of class k must hold class k (`label` is the whole volume).
void VolumeStore::Impl::check_locations(int64_t c, const uint8_t* label) const {
  const Index3& s = cases[static_cast<size_t>(c)].shape;
  for (int64_t k = 1; k < classes; ++k) {
    for (const auto& p : locations[static_cast<size_t>(c)][static_cast<size_t>(k)]) {
      const uint8_t got = label[(p[0] * s[1] + p[1]) * s[2] + p[2]];
      if (got != k) {
        STRATA_THROW(DataError, "{}: /{}/{} of {} lists ({}), which holds class {}: the file is corrupt; repack it",
                     path, object(c, format::kCaseClassLocations), k, describe(c), fmt::join(p, ", "), got);
      }
    }
  }
}

VolumeStore::VolumeStore(std::string path, VolumeStoreOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->path = std::move(path);
  impl_->open(options);
}

VolumeStore::~VolumeStore() = default;

const std::string& VolumeStore::path() const { return impl_->path; }
const StoreInfo& VolumeStore::info() const { return impl_->info; }
int64_t VolumeStore::channels() const { return impl_->channels; }
int64_t VolumeStore::num_classes() const { return impl_->classes; }
int64_t VolumeStore::num_cases() const { return static_cast<int64_t>(impl_->cases.size()); }
std::string VolumeStore::describe_case(int64_t c) const { return impl_->describe(c); }

const VolumeCase& VolumeStore::volume_case(int64_t c) const {
  STRATA_CHECK_AS(DataError, c >= 0 && c < num_cases(), "{}: case index {} is out of range (the file has {} cases)",
                  impl_->path, c, num_cases());
  return impl_->cases[static_cast<size_t>(c)];
}

const CaseFoldTable& VolumeStore::folds() const { return impl_->folds; }

std::vector<std::string> VolumeStore::split_names() const { return packed::names_of(impl_->splits); }

const VolumeSplit& VolumeStore::split(const std::string& name) const {
  return packed::find_split(impl_->splits, impl_->path, name);
}

const std::vector<std::array<int32_t, 3>>& VolumeStore::class_locations(int64_t c, int64_t k) const {
  volume_case(c);
  STRATA_CHECK_AS(DataError, k >= 1 && k < impl_->classes, "{}: class {} has no locations (classes 1..{} do)",
                  impl_->path, k, impl_->classes - 1);
  return impl_->locations[static_cast<size_t>(c)][static_cast<size_t>(k)];
}

void VolumeStore::read_box(int64_t c, const Index3& origin, const Index3& size, c10::Half* image,
                           uint8_t* label) const {
  const Impl& m = *impl_;
  const VolumeCase& v = volume_case(c);
  STRATA_CHECK(size[0] > 0 && size[1] > 0 && size[2] > 0, "read_box: size ({}) must be positive", fmt::join(size, ", "));
  STRATA_CHECK_AS(DataError, !label || v.has_labels, "{}: {} has no labels (packed without a seg)", m.path,
                  m.describe(c));
  const int64_t n = volume_of(size);
  // Outside the volume: 0, the normalised background and class 0.
  if (image) std::memset(static_cast<void*>(image), 0, static_cast<size_t>(m.channels * n) * sizeof(c10::Half));
  if (label) std::memset(label, 0, static_cast<size_t>(n));
  const Overlap o = overlap(v.shape, origin, size);
  if (o.empty()) return;
  h5::Lock lock;
  const auto i = static_cast<size_t>(c);
  if (image) m.read_region(m.images[i].get(), m.half.get(), c, format::kCaseImage, o, origin, size, m.channels, image);
  if (label) {
    m.read_region(m.labels[i].get(), H5T_NATIVE_UINT8, c, format::kCaseLabel, o, origin, size, 0, label);
    m.check_labels(c, label, n);
  }
}

std::pair<at::Tensor, at::Tensor> VolumeStore::read_case(int64_t c) const {
  const VolumeCase& v = volume_case(c);
  at::Tensor image = at::empty({channels(), v.shape[0], v.shape[1], v.shape[2]}, at::kHalf);
  at::Tensor label;
  if (v.has_labels) label = at::empty({v.shape[0], v.shape[1], v.shape[2]}, at::kByte);
  read_box(c, {0, 0, 0}, v.shape, image.data_ptr<c10::Half>(), v.has_labels ? label.data_ptr<uint8_t>() : nullptr);
  return {image.to(at::kFloat), v.has_labels ? label.to(at::kLong) : label};
}

// Reads case c whole (every chunk through HDF5's Fletcher-32 check, labels checked),
// checks its class locations and returns its class voxels.
std::vector<int64_t> VolumeStore::verify_case(int64_t c, VerifyReport& report) const {
  const Impl& m = *impl_;
  const VolumeCase& v = m.cases[static_cast<size_t>(c)];
  auto [image, label] = read_case(c);
  int64_t chunks = 1;
  for (int64_t d : v.shape) chunks *= (d + format::kVolumeChunk - 1) / format::kVolumeChunk;
  report.chunks += chunks * (v.has_labels ? 2 : 1);
  report.bytes += volume_of(v.shape) * (2 * m.channels + (v.has_labels ? 1 : 0));
  if (!v.has_labels) return {};
  at::Tensor bytes = label.to(at::kByte).contiguous();
  m.check_locations(c, bytes.data_ptr<uint8_t>());
  at::Tensor per_class = at::bincount(label.flatten(), {}, m.classes).contiguous();
  return {per_class.data_ptr<int64_t>(), per_class.data_ptr<int64_t>() + m.classes};
}

VerifyReport VolumeStore::verify(const std::function<void(int64_t, int64_t)>& progress) const {
  const Impl& m = *impl_;
  core::Stopwatch clock;
  VerifyReport report;
  report.metadata_checksum = true;
  report.folds = m.folds.folds > 0;
  std::vector<int64_t> case_counts(m.cases.size() * static_cast<size_t>(m.classes), 0);
  std::vector<int> split_of(m.cases.size(), -1);
  for (size_t s = 0; s < m.splits.size(); ++s) {
    for (int64_t c : m.splits[s].cases) split_of[static_cast<size_t>(c)] = static_cast<int>(s);
  }
  std::vector<std::vector<int64_t>> counts(m.splits.size(), std::vector<int64_t>(static_cast<size_t>(m.classes)));
  for (int64_t c = 0; c < num_cases(); ++c) {
    const int s = split_of[static_cast<size_t>(c)];
    const std::vector<int64_t> mine = verify_case(c, report);
    for (size_t k = 0; k < mine.size(); ++k) {
      if (s >= 0) counts[static_cast<size_t>(s)][k] += mine[k];
      case_counts[static_cast<size_t>(c * m.classes) + k] = mine[k];
    }
    if (progress) progress(c + 1, num_cases());
  }
  packed::check_class_counts(m.splits, counts, m.path, "voxel");
  packed::check_case_class_voxels(m.folds, case_counts, m.names(), m.path, "voxel");
  report.seconds = clock.seconds();
  return report;
}

bool is_volume_file(const std::string& path) {
  h5::Lock lock;  // before the handle: it closes under the lock
  h5::Handle file = packed::open_file(path, "the packed file");
  STRATA_CHECK_AS(DataError, h5::has_attr(file.get(), format::kAttrFormat),
                  "{}: not a Strata packed file (no root attribute '{}')", path, format::kAttrFormat);
  const std::string name = h5::read_string_attr(file.get(), format::kAttrFormat, path);
  if (packed::ends_with(name, format::kVolumeFormatSuffix)) return true;
  if (packed::ends_with(name, format::kFormatSuffix)) return false;
  STRATA_THROW(DataError, "{}: root attribute '{}' is '{}', neither packed slices ('{}') nor volumes ('{}')", path,
               format::kAttrFormat, name, format::kFormatSuffix, format::kVolumeFormatSuffix);
}

std::vector<int64_t> volume_cases_of_rank(const VolumeStore& store, const std::vector<int64_t>& cases, int rank,
                                          int world) {
  std::vector<int32_t> item_case;
  for (int64_t c : cases) {
    const Index3& s = store.volume_case(c).shape;
    for (int64_t z = 0; z < s[0]; ++z) item_case.push_back(static_cast<int32_t>(c));
  }
  auto sampler = ShardSampler::by_case(item_case, rank, world, 1);
  std::vector<int64_t> mine(sampler.cases().begin(), sampler.cases().end());
  std::sort(mine.begin(), mine.end());
  return mine;
}

}  // namespace strata::data
