// SliceStore: both read paths agree byte for byte (in any order, with repeats, across
// threads), our Fletcher-32 equals HDF5's, and damaged files (another version,
// truncated, a flipped byte, a label outside the map) fail with the file and slice named.
#include "data_fixture.h"
#include "strata/core/error.h"
#include "strata/data/fletcher32.h"
#include "strata/data/format.h"
#include "strata/data/h5.h"
#include "strata/data/slice_store.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <numeric>
#include <set>
#include <thread>

namespace strata::data {
namespace {

namespace fs = std::filesystem;
using test::error_of;

SliceStoreOptions with(ReadPath p) {
  SliceStoreOptions o;
  o.read_path = p;
  return o;
}

struct RawBatch {
  std::vector<c10::Half> images;
  std::vector<uint8_t> labels;
};

RawBatch read_batch(const SliceStore& s, const std::vector<int64_t>& idx) {
  RawBatch b;
  b.images.resize(static_cast<size_t>(s.image_bytes() / 2) * idx.size());
  b.labels.resize(static_cast<size_t>(s.label_bytes()) * idx.size());
  s.read(idx.data(), static_cast<int64_t>(idx.size()), b.images.data(), b.labels.data());
  return b;
}

bool same(const RawBatch& a, const RawBatch& b) {
  return a.labels == b.labels && a.images.size() == b.images.size() &&
         std::memcmp(a.images.data(), b.images.data(), a.images.size() * 2) == 0;
}

TEST(Fletcher32, MatchesTheChecksumHdf5Stored) {
  const std::string& path = test::tiny_packed();
  h5::Lock lock;
  h5::Handle file = h5::make<core::IoError>(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, path);
  for (const char* name : {format::kImages, format::kLabels}) {
    h5::Handle ds = h5::make<core::IoError>(H5Dopen2(file.get(), name, H5P_DEFAULT), H5Dclose, name);
    std::vector<hsize_t> coord(h5::dims_of(ds.get()).size(), 0);
    for (hsize_t slice : {0, 3}) {
      coord[0] = slice;
      hsize_t size = 0;
      ASSERT_GE(H5Dget_chunk_storage_size(ds.get(), coord.data(), &size), 0);
      std::vector<unsigned char> raw(size);
      uint32_t filters = 0;
      ASSERT_GE(H5Dread_chunk(ds.get(), H5P_DEFAULT, coord.data(), &filters, raw.data()), 0);
      ASSERT_EQ(filters, 0u);
      EXPECT_EQ(fletcher32(raw.data(), size - 4), stored_fletcher32(raw.data() + size - 4)) << name << " " << slice;
    }
  }
  // Known value: words 0x6162, 0x6364 give sum1 = 0xc4c6 and sum2 = 0x12628, folded
  // to 0x2629. An odd tail byte counts as a high byte.
  const unsigned char abcde[] = {'a', 'b', 'c', 'd', 'e'};
  EXPECT_EQ(fletcher32(abcde, 4), 0x2629c4c6u);
  EXPECT_NE(fletcher32(abcde, 5), fletcher32(abcde, 4));
}

TEST(SliceStore, ValidatesAndExposesMetadata) {
  SliceStore s(test::tiny_packed());
  EXPECT_EQ(s.read_path(), ReadPath::kDirect);
  EXPECT_EQ(s.channels(), 4);
  EXPECT_EQ(s.info().modalities, (std::vector<std::string>{"t1", "t1ce", "t2", "flair"}));
  EXPECT_EQ(s.info().label_source_values, (std::vector<int64_t>{0, 1, 2, 4}));
  EXPECT_TRUE(s.info().checksums);
  EXPECT_EQ(s.split_names(), (std::vector<std::string>{"train", "val"}));
  std::string why = error_of([&] { s.split("test"); });
  EXPECT_NE(why.find("no split 'test'"), std::string::npos) << why;
  EXPECT_NE(s.describe_slice(0).find("case BraTS2021_0000"), std::string::npos);
}

// The tiny file as another writer might have packed it (format version 2, whose
// metadata carries no checksum to recompute): "strata.test.slices", 3 channels (the
// first 3 of each slice), 5 classes (a fifth with no pixels) and splits "fold0" and
// "fold1" (the former train and val).
std::string make_generic(const std::string& name) {
  const std::string path = test::temp_dir("generic_" + name) + "/packed.h5";
  test::copy_file(test::tiny_packed(), path);
  test::make_version2(path);
  at::Tensor three;
  std::map<std::string, std::vector<int64_t>> voxels;
  {
    SliceStore four(path);  // closed before the file is opened for writing
    at::Tensor images = at::empty({four.num_slices(), 4, four.height(), four.width()}, at::kHalf);
    std::vector<int64_t> all(static_cast<size_t>(four.num_slices()));
    std::iota(all.begin(), all.end(), 0);
    four.read_into(all, images, at::Tensor());
    three = images.narrow(1, 0, 3).contiguous();
    for (const char* split : {"train", "val"}) voxels[split] = four.split_info(split).class_voxels;
  }
  h5::Lock lock;
  h5::Handle file = h5::make<core::IoError>(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose, path);
  H5Ldelete(file.get(), format::kImages, H5P_DEFAULT);
  std::vector<hsize_t> dims{static_cast<hsize_t>(three.size(0)), 3, static_cast<hsize_t>(three.size(2)),
                            static_cast<hsize_t>(three.size(3))};
  std::vector<hsize_t> chunk{1, 3, dims[2], dims[3]};
  h5::Handle space = h5::make<core::IoError>(H5Screate_simple(4, dims.data(), nullptr), H5Sclose, path);
  h5::Handle dcpl = h5::make<core::IoError>(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, path);
  H5Pset_chunk(dcpl.get(), 4, chunk.data());
  H5Pset_fletcher32(dcpl.get());
  h5::Handle half = h5::float16_type();
  h5::Handle ds = h5::make<core::IoError>(H5Dcreate2(file.get(), format::kImages, half.get(), space.get(),
                                                     H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), H5Dclose, path);
  h5::check<core::IoError>(H5Dwrite(ds.get(), half.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, three.data_ptr()), path);
  h5::write_attr(file.get(), format::kAttrFormat, std::string("strata.test.slices"));
  h5::write_attr(file.get(), format::kAttrModalities, std::vector<std::string>{"a", "b", "c"});
  h5::write_attr(file.get(), format::kAttrClassNames, std::vector<std::string>{"k0", "k1", "k2", "k3", "k4"});
  h5::write_attr(file.get(), format::kAttrLabelValues, std::vector<int64_t>{0, 1, 2, 3, 4});
  for (const auto& [from, to] : {std::pair{"train", "fold0"}, std::pair{"val", "fold1"}}) {
    voxels[from].push_back(0);
    const std::string src = fmt::format("{}/{}", format::kSplits, from), dst = fmt::format("{}/{}", format::kSplits, to);
    H5Lmove(file.get(), src.c_str(), file.get(), dst.c_str(), H5P_DEFAULT, H5P_DEFAULT);
    h5::Handle split = h5::make<core::IoError>(H5Dopen2(file.get(), dst.c_str(), H5P_DEFAULT), H5Dclose, path);
    h5::write_attr(split.get(), format::kAttrSplitClassVoxels, voxels[from]);
  }
  return path;
}

TEST(SliceStore, ChannelsClassesAndSplitsAreTheFiles) {
  const std::string path = make_generic("generic");
  SliceStore four(test::tiny_packed());
  for (ReadPath p : {ReadPath::kDirect, ReadPath::kHdf5}) {
    SliceStore s(path, with(p));
    EXPECT_EQ(s.info().format, "strata.test.slices");
    EXPECT_EQ(s.channels(), 3);
    EXPECT_EQ(s.image_bytes(), 2 * 3 * s.height() * s.width());
    EXPECT_EQ(s.num_classes(), 5);
    EXPECT_EQ(s.info().modalities, (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_EQ(s.split_names(), (std::vector<std::string>{"fold0", "fold1"}));
    EXPECT_EQ(s.split("fold1"), four.split("val"));
    EXPECT_EQ(s.split_info("fold0").class_voxels.size(), 5u);
    const std::vector<int64_t> idx{3, 0, 3};
    at::Tensor got = at::empty({3, 3, s.height(), s.width()}, at::kFloat);
    at::Tensor want = at::empty({3, 4, s.height(), s.width()}, at::kFloat);
    s.read_into(idx, got, at::Tensor());
    four.read_into(idx, want, at::Tensor());
    EXPECT_TRUE(at::equal(got, want.narrow(1, 0, 3)));
    EXPECT_EQ(s.verify().chunks, 2 * s.num_slices());  // recounts 5 classes per split
  }
}

TEST(SliceStore, ChannelNamesMustMatchTheImages) {
  const std::string path = make_generic("four_names");
  {
    h5::Lock lock;
    h5::Handle file = h5::make<core::IoError>(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose, path);
    h5::write_attr(file.get(), format::kAttrModalities, std::vector<std::string>{"a", "b", "c", "d"});
  }
  std::string why = error_of([&] { SliceStore s(path); });
  EXPECT_NE(why.find("root attribute 'modalities' names 4 channels [a, b, c, d], but /images holds 3"),
            std::string::npos) << why;
  {
    h5::Lock lock;
    h5::Handle file = h5::make<core::IoError>(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose, path);
    h5::write_attr(file.get(), format::kAttrModalities, std::vector<std::string>{"a", "b", "c"});
    h5::write_attr(file.get(), format::kAttrLabelValues, std::vector<int64_t>{0, 1, 2, 3});
  }
  why = error_of([&] { SliceStore s(path); });
  EXPECT_NE(why.find("the label map has 5 class names ('class_names') and 4 source values"), std::string::npos)
      << why;
  {
    h5::Lock lock;
    h5::Handle file = h5::make<core::IoError>(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose, path);
    h5::write_attr(file.get(), format::kAttrFormat, std::string("strata.slices"));
  }
  why = error_of([&] { SliceStore s(path); });
  EXPECT_NE(why.find("root attribute 'format' is 'strata.slices', not 'strata.<content>.slices'"), std::string::npos)
      << why;
}

TEST(SliceStore, DirectAndHdf5PathsReadTheSameBytesInAnyOrder) {
  SliceStore direct(test::tiny_packed(), with(ReadPath::kDirect));
  SliceStore hdf5(test::tiny_packed(), with(ReadPath::kHdf5));
  ASSERT_EQ(hdf5.read_path(), ReadPath::kHdf5);
  const int64_t n = direct.num_slices();
  std::vector<int64_t> all(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) all[static_cast<size_t>(i)] = i;
  RawBatch ref = read_batch(hdf5, all);  // adjacent indices: coalesced reads
  EXPECT_TRUE(same(read_batch(direct, all), ref));
  // Reversed, shuffled-looking and repeated indices: slice k of the batch is slice idx[k].
  std::vector<int64_t> odd = {n - 1, 0, 2, 1, 2, n / 2, n - 1};
  RawBatch a = read_batch(direct, odd), b = read_batch(hdf5, odd);
  EXPECT_TRUE(same(a, b));
  const size_t img = static_cast<size_t>(direct.image_bytes() / 2), lab = static_cast<size_t>(direct.label_bytes());
  for (size_t k = 0; k < odd.size(); ++k) {
    auto i = static_cast<size_t>(odd[k]);
    EXPECT_EQ(std::memcmp(&a.images[k * img], &ref.images[i * img], img * 2), 0) << k;
    EXPECT_EQ(std::memcmp(&a.labels[k * lab], &ref.labels[i * lab], lab), 0) << k;
  }
  // Null buffers skip a dataset.
  std::vector<uint8_t> only_labels(lab);
  int64_t first = 0;
  direct.read(&first, 1, nullptr, only_labels.data());
  EXPECT_EQ(std::memcmp(only_labels.data(), ref.labels.data(), lab), 0);
  EXPECT_THROW(direct.read(std::vector<int64_t>{n}.data(), 1, nullptr, only_labels.data()), core::DataError);
}

TEST(SliceStore, ReadIntoConvertsToFloatAndLong) {
  SliceStore s(test::tiny_packed());
  std::vector<int64_t> idx = {1, 4, 2};
  at::Tensor half = at::empty({3, 4, 32, 32}, at::kHalf), bytes = at::empty({3, 32, 32}, at::kByte);
  at::Tensor f32 = at::empty({3, 4, 32, 32}, at::kFloat), i64 = at::empty({3, 32, 32}, at::kLong);
  s.read_into(idx, half, bytes);
  s.read_into(idx, f32, i64);
  EXPECT_TRUE(at::equal(half.to(at::kFloat), f32));
  EXPECT_TRUE(at::equal(bytes.to(at::kLong), i64));
  EXPECT_THROW(s.read_into(idx, at::empty({2, 4, 32, 32}, at::kFloat), at::Tensor()), core::InternalError);
}

TEST(SliceStore, ConcurrentReadersGetWhatOneReaderGets) {
  for (ReadPath path : {ReadPath::kDirect, ReadPath::kHdf5}) {
    SliceStore s(test::tiny_packed(), with(path));
    const int64_t n = s.num_slices();
    std::vector<std::vector<int64_t>> batches;
    for (int64_t b = 0; b < 24; ++b) batches.push_back({(b * 7) % n, (b * 13 + 1) % n, (b * 5 + 2) % n});
    std::vector<RawBatch> want;
    for (const auto& idx : batches) want.push_back(read_batch(s, idx));
    std::atomic<int> mismatches{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int rep = 0; rep < 5; ++rep) {
          for (size_t b = static_cast<size_t>(t); b < batches.size(); b += 2) {
            if (!same(read_batch(s, batches[b]), want[b])) ++mismatches;
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(mismatches.load(), 0) << read_path_name(path);
  }
}

TEST(SliceStoreBadFile, MissingOrNotHdf5) {
  std::string dir = test::temp_dir("store_missing");
  std::string why = error_of([&] { SliceStore s(dir + "/absent.h5"); });
  EXPECT_NE(why.find(dir + "/absent.h5"), std::string::npos) << why;
  std::string text = dir + "/text.h5";
  std::ofstream(text) << "not hdf5";
  why = error_of([&] { SliceStore s(text); });
  EXPECT_NE(why.find("not an HDF5 file"), std::string::npos) << why;
}

TEST(SliceStoreBadFile, AnotherFormatVersion) {
  std::string path = test::temp_dir("store_version") + "/v3.h5";
  test::copy_file(test::tiny_packed(), path);
  test::set_int_attr(path, format::kAttrVersion, format::kFormatVersion + 1);
  std::string why = error_of([&] { SliceStore s(path); });
  EXPECT_NE(why.find(path), std::string::npos) << why;
  EXPECT_NE(why.find(fmt::format("format version {}", format::kFormatVersion + 1)), std::string::npos) << why;
}

TEST(SliceStoreFormat, Version2RecordsEachCasesSourceGeometry) {
  SliceStore s(test::tiny_packed());
  EXPECT_EQ(s.info().format_version, 3);
  ASSERT_TRUE(s.has_case_sources());
  for (int32_t c = 0; c < static_cast<int32_t>(s.num_cases()); ++c) {
    const CaseSource& src = s.case_source(c);
    EXPECT_EQ(src.dims, (std::array<int64_t, 3>{48, 48, 24})) << s.case_names()[c];
    EXPECT_GT(src.spacing[0], 0);
    EXPECT_GT(src.side, 0);
    EXPECT_LE(src.side, 48);
    EXPECT_DOUBLE_EQ(src.scale, 32.0 / static_cast<double>(src.side));
    EXPECT_GT(src.qform_code + src.sform_code, 0) << "the synthetic files carry a qform";
    EXPECT_DOUBLE_EQ(src.qform[15], 1.0);
  }
}

TEST(SliceStoreFormat, Version1FilesStillTrainButCannotMapBack) {
  // A version 1 file: no case_* datasets. Training and packed-geometry evaluation read
  // it as before; asking for the source geometry says to repack.
  std::string path = test::temp_dir("store_v1") + "/v1.h5";
  test::copy_file(test::tiny_packed(), path);
  test::make_version1(path);
  SliceStore s(path);
  EXPECT_EQ(s.info().format_version, 1);
  EXPECT_FALSE(s.has_case_sources());
  EXPECT_NO_THROW(read_batch(s, {0, 1, 2}));
  std::string why = error_of([&] { s.case_source(0); });
  EXPECT_NE(why.find("format version 1 records no source geometry"), std::string::npos) << why;
  EXPECT_NE(why.find("repack it"), std::string::npos) << why;
}

TEST(SliceStoreBadFile, Truncated) {
  std::string path = test::temp_dir("store_truncated") + "/cut.h5";
  test::copy_file(test::tiny_packed(), path);
  fs::resize_file(path, fs::file_size(path) * 2 / 3);
  for (ReadPath p : {ReadPath::kDirect, ReadPath::kHdf5}) {
    std::string why = error_of([&] { SliceStore s(path, with(p)); });
    EXPECT_NE(why.find(path), std::string::npos) << why;
    EXPECT_FALSE(why.empty()) << "a truncated file must not open";
  }
}

TEST(SliceStoreBadFile, FlippedByteFailsEveryReaderAndVerifyNamingTheSlice) {
  std::string path = test::temp_dir("store_corrupt") + "/flip.h5";
  test::copy_file(test::tiny_packed(), path);
  const int64_t victim = 5;
  test::flip_byte(path, test::chunk_offset(path, format::kImages, victim) + 1000);
  for (ReadPath p : {ReadPath::kDirect, ReadPath::kHdf5}) {
    SliceStore s(path, with(p));  // metadata is intact: opening works
    std::string case_name = s.case_names()[static_cast<size_t>(s.case_of(victim))];
    EXPECT_NO_THROW(read_batch(s, {victim - 1, victim + 1}));
    std::string why = error_of([&] { read_batch(s, {victim - 1, victim, victim + 1}); });
    EXPECT_NE(why.find(path), std::string::npos) << why;
    EXPECT_NE(why.find("/images slice 5"), std::string::npos) << why;
    EXPECT_NE(why.find(case_name), std::string::npos) << why;
    EXPECT_NE(why.find("Fletcher"), std::string::npos) << why;  // says what failed
    why = error_of([&] { s.verify(); });
    EXPECT_NE(why.find("/images slice 5"), std::string::npos) << why;
  }
}

TEST(SliceStoreFormat, Version3HasNoGlobalHeapAndChecksumsItsMetadata) {
  std::ifstream in(test::tiny_packed(), std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(all.find("GCOL"), std::string::npos) << "no variable-length strings, so no global heap collection";
  const std::string dir = test::temp_dir("store_v3");

  std::string attr = dir + "/attr.h5";  // an attribute changed after packing
  test::copy_file(test::tiny_packed(), attr);
  test::set_int_attr(attr, format::kAttrSeed, 12345);
  for (ReadPath p : {ReadPath::kDirect, ReadPath::kHdf5}) {
    std::string why = error_of([&] { SliceStore s(attr, with(p)); });
    EXPECT_NE(why.find(attr + ": metadata checksum mismatch"), std::string::npos) << why;
  }
  std::string name = dir + "/name.h5";  // a byte of a case name: the chunk's Fletcher-32
  test::copy_file(test::tiny_packed(), name);
  test::flip_byte(name, test::chunk_offset(name, format::kCaseNames, 0) + 3);
  std::string why = error_of([&] { SliceStore s(name); });
  EXPECT_NE(why.find("/case_names"), std::string::npos) << why;
}

TEST(SliceStoreFormat, Version2CaseNamesReadWithoutHdf5sHeapConversion) {
  std::string path = test::temp_dir("store_v2") + "/v2.h5";
  test::copy_file(test::tiny_packed(), path);
  test::make_version2(path);
  SliceStore v2(path), v3(test::tiny_packed());
  EXPECT_EQ(v2.info().format_version, 2);
  EXPECT_EQ(v2.case_names(), v3.case_names());
  EXPECT_EQ(v2.info().normalisation, v3.info().normalisation);
}

// One changed byte in a version 2 file's /case_names references or heap crashed
// libhdf5 (H5HG_read) or gave a case another's name; each is a named error now.
TEST(SliceStoreBadFile, DamagedVersion2CaseNameHeapIsANamedError) {
  const std::string dir = test::temp_dir("store_v2_heap");
  const std::string clean = dir + "/clean.h5";
  test::copy_file(test::tiny_packed(), clean);
  test::make_version2(clean);
  const uint64_t refs = test::dataset_offset(clean, format::kCaseNames);
  const uint64_t heap = test::find_bytes(clean, "GCOL");
  const uint64_t name1 = test::find_bytes(clean, "BraTS2021_00001", heap);
  struct Damage {
    const char* what;
    uint64_t offset;
    int value;  // -1: XOR 0xff
    const char* expect;
  };
  const Damage damages[] = {
      {"object index of entry 1", refs + 16 + 12, -1, "/case_names entry 1 refers to heap object"},
      {"length of entry 2", refs + 32, -1, "/case_names entry 2 refers to heap object"},
      {"collection address of entry 3", refs + 48 + 5, -1, "/case_names entry 3 refers to address"},
      {"heap object size", name1 - 8, -1, "is damaged at its byte"},
      {"one name made another's", name1 + 14, '0', "names cases 0 and 1 both 'BraTS2021_00000'"},
  };
  for (const Damage& d : damages) {
    std::string path = dir + "/damaged.h5";
    test::copy_file(clean, path);
    if (d.value < 0) test::flip_byte(path, d.offset);
    else test::set_byte(path, d.offset, static_cast<unsigned char>(d.value));
    for (ReadPath p : {ReadPath::kDirect, ReadPath::kHdf5}) {
      std::string why = error_of([&] { SliceStore s(path, with(p)); });
      EXPECT_NE(why.find(path), std::string::npos) << d.what << ": " << why;
      EXPECT_NE(why.find(d.expect), std::string::npos) << d.what << ": " << why;
    }
  }
}

// A version 2 file's string attributes point into the same heap: H5Aread crashed in
// H5HG_read on a damaged reference, or asked for 4 GiB for a damaged length (fuzz
// findings slice_store-crash-c4dfa1ad and -oom-f94c9700); each is a named error now.
TEST(SliceStoreBadFile, DamagedVersion2AttributeHeapIsANamedError) {
  const std::string dir = test::temp_dir("store_v2_attr");
  const std::string clean = dir + "/clean.h5";
  test::copy_file(test::tiny_packed(), clean);
  test::make_version2(clean);
  const std::string tool = SliceStore(clean).info().tool;
  ASSERT_EQ(tool, SliceStore(test::tiny_packed()).info().tool);
  std::ifstream in(clean, std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The heap object holding `tool`, then the attribute's reference to it: {uint32
  // length, uint64 collection address, uint32 object index}, little-endian.
  const uint64_t heap = test::find_bytes(clean, "GCOL"), value = test::find_bytes(clean, tool, heap);
  std::string ref(16, '\0');
  const auto length = static_cast<uint32_t>(tool.size());
  std::memcpy(ref.data(), &length, 4);
  std::memcpy(ref.data() + 4, &heap, 8);
  std::memcpy(ref.data() + 12, all.data() + value - 16, 2);
  const uint64_t at = test::find_bytes(clean, ref);
  struct Damage {
    const char* what;
    uint64_t offset;
    const char* expect;
  };
  const Damage damages[] = {
      {"length (4 GiB)", at + 3, ": attribute 'tool' entry 0 refers to heap object"},
      {"collection address", at + 4 + 1, ": attribute 'tool' entry 0 refers to address"},
      {"object index", at + 12, ": attribute 'tool' entry 0 refers to heap object"},
      // The collection that /case_names share, which is read first.
      {"heap object size", value - 8, ": /case_names entry 0: the heap collection at address"},
  };
  for (const Damage& d : damages) {
    std::string path = dir + "/damaged.h5";
    test::copy_file(clean, path);
    test::flip_byte(path, d.offset);
    std::string why = error_of([&] { SliceStore s(path); });
    EXPECT_NE(why.find(path + d.expect), std::string::npos) << d.what << ": " << why;
  }
}

// The metadata checksum reads every metadata dataset whole: a damaged shape claiming
// terabytes made it allocate them (a fuzz finding: std::length_error). A dataset's
// values never outgrow their storage in a Strata file; one that does is refused.
TEST(SliceStoreBadFile, MetadataClaimingMoreThanItStoresIsRefusedUnallocated) {
  const std::string path = test::temp_dir("store_claim") + "/claim.h5";
  test::copy_file(test::tiny_packed(), path);
  {
    h5::Lock lock;
    h5::Handle file = h5::make<core::IoError>(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose, path);
    hsize_t dims[1] = {hsize_t{1} << 40}, chunk[1] = {1024};
    h5::Handle space = h5::make<core::IoError>(H5Screate_simple(1, dims, nullptr), H5Sclose, path);
    h5::Handle dcpl = h5::make<core::IoError>(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, path);
    H5Pset_chunk(dcpl.get(), 1, chunk);
    h5::Handle ds = h5::make<core::IoError>(H5Dcreate2(file.get(), "case_huge", H5T_STD_I32LE, space.get(),
                                                       H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), H5Dclose, path);
  }
  for (ReadPath p : {ReadPath::kDirect, ReadPath::kHdf5}) {
    std::string why = error_of([&] { SliceStore s(path, with(p)); });
    EXPECT_NE(why.find(path + ": dataset /case_huge claims 4398046511104 bytes of values but stores 0"),
              std::string::npos) << why;
  }
}

// A damaged key of the chunk index: HDF5 finds no chunk for the slice and reads its
// fill value (zeros) without an error; both read paths refuse the file on open.
TEST(SliceStoreBadFile, DamagedChunkIndexKeyIsFoundOnOpenNamingTheSlice) {
  std::string path = test::temp_dir("store_index") + "/index.h5";
  test::copy_file(test::tiny_packed(), path);
  test::flip_byte(path, test::chunk_key_offset(path, format::kImages, 3) + 8);  // the slice coordinate
  for (ReadPath p : {ReadPath::kDirect, ReadPath::kHdf5}) {
    std::string why = error_of([&] { SliceStore s(path, with(p)); });
    EXPECT_NE(why.find(path), std::string::npos) << why;
    EXPECT_NE(why.find("the chunk index of /images has no entry for slice 3"), std::string::npos) << why;
  }
}

TEST(SliceStoreBadFile, LabelOutsideTheMap) {
  // Without checksums a damaged label byte reaches the range check.
  std::string dir = test::temp_dir("store_label");
  dataprep::PackOptions o = test::tiny_pack_options(dir + "/nock.h5");
  o.checksums = false;
  dataprep::pack_dataset(o);
  SliceStore clean(o.out_path);
  EXPECT_FALSE(clean.info().checksums);
  EXPECT_NO_THROW(clean.verify());
  test::flip_byte(o.out_path, test::chunk_offset(o.out_path, format::kLabels, 2) + 7);
  SliceStore s(o.out_path);
  std::vector<uint8_t> labels(static_cast<size_t>(s.label_bytes()));
  int64_t i = 2;
  std::string why = error_of([&] { s.read(&i, 1, nullptr, labels.data()); });
  EXPECT_NE(why.find("/labels slice 2"), std::string::npos) << why;
  EXPECT_NE(why.find("outside the label map"), std::string::npos) << why;
}

// Folds (pack --folds, FORMAT.md "Folds"): SliceStoreOptions::fold re-makes train and val
// from /case_folds and /case_class_voxels, checked on open and recounted by verify.
SliceStoreOptions fold_option(int64_t k) {
  SliceStoreOptions o;
  o.fold = k;
  return o;
}

std::set<int32_t> cases_in(const SliceStore& s, const std::string& split) {
  const std::vector<int32_t> cases = s.cases_of(s.split(split));
  return {cases.begin(), cases.end()};
}

// Class pixels of `slices`, counted from their labels.
std::vector<int64_t> recount_pixels(const SliceStore& s, const std::vector<int64_t>& slices) {
  std::vector<int64_t> counts(static_cast<size_t>(s.num_classes()), 0);
  const RawBatch b = read_batch(s, slices);
  for (uint8_t v : b.labels) ++counts[v];
  return counts;
}

TEST(SliceStoreFolds, EachFoldRemakesTrainAndValWithStatisticsEqualToARecount) {
  const std::string& path = test::tiny_folds_packed();
  const SliceStore stored(path);
  const CaseFoldTable& t = stored.folds();
  ASSERT_EQ(t.folds, 3);
  EXPECT_EQ(stored.info().folds, 3);
  EXPECT_EQ(t.val_fold, 1) << "packed with --fold 1";
  ASSERT_EQ(t.fold_of.size(), static_cast<size_t>(stored.num_cases()));
  std::vector<int64_t> all = stored.split("train");
  all.insert(all.end(), stored.split("val").begin(), stored.split("val").end());
  std::sort(all.begin(), all.end());
  for (int64_t k = 0; k < t.folds; ++k) {
    const SliceStore s(path, fold_option(k));
    EXPECT_EQ(s.folds().val_fold, k);
    const auto& train = s.split("train");
    const auto& val = s.split("val");
    std::vector<int64_t> both = train;
    both.insert(both.end(), val.begin(), val.end());
    std::sort(both.begin(), both.end());
    EXPECT_EQ(both, all) << "fold " << k << ": train and val share no slice and cover every non-test one";
    EXPECT_TRUE(std::is_sorted(train.begin(), train.end()) && std::is_sorted(val.begin(), val.end()));
    std::set<int32_t> want_val;
    for (int64_t i : all) {
      if (t.fold_of[static_cast<size_t>(stored.case_of(i))] == k) want_val.insert(stored.case_of(i));
    }
    EXPECT_EQ(cases_in(s, "val"), want_val) << "fold " << k;
    for (int32_t c : cases_in(s, "train")) EXPECT_TRUE(t.fold_of[static_cast<size_t>(c)] >= 0 && t.fold_of[static_cast<size_t>(c)] != k);
    EXPECT_EQ(s.split("test"), stored.split("test")) << "test is no fold's";
    for (const char* name : {"train", "val"}) {
      const SplitInfo& split = s.split_info(name);
      EXPECT_EQ(split.class_voxels, recount_pixels(s, split.slices)) << "fold " << k << " " << name;
      EXPECT_EQ(split.cases, static_cast<int64_t>(cases_in(s, name).size())) << "fold " << k << " " << name;
    }
    if (k == t.val_fold) {
      EXPECT_EQ(val, stored.split("val"));
      EXPECT_EQ(s.split_info("train").class_voxels, stored.split_info("train").class_voxels);
    }
    EXPECT_NO_THROW(s.verify());
  }
}

TEST(SliceStoreFolds, AFoldOfAFileWithoutFoldsOrOutsideThemIsANamedError) {
  const SliceStore plain(test::tiny_packed());
  EXPECT_EQ(plain.folds().folds, 0);
  EXPECT_TRUE(plain.folds().fold_of.empty());
  std::string why = test::error_as<core::DataError>([&] { SliceStore s(test::tiny_packed(), fold_option(0)); });
  EXPECT_NE(why.find(test::tiny_packed()), std::string::npos) << why;
  EXPECT_NE(why.find("records no folds; repack it with `brats_recipe pack --folds K`"), std::string::npos) << why;
  why = test::error_as<core::ConfigError>([&] { SliceStore s(test::tiny_folds_packed(), fold_option(3)); });
  EXPECT_NE(why.find("data.fold 3 is not a fold of"), std::string::npos) << why;
  EXPECT_NE(why.find("which has 3 folds (0 to 2)"), std::string::npos) << why;
}

TEST(SliceStoreFolds, ADamagedCaseFoldIsANamedErrorOnOpenAndSoInVerify) {
  const std::string dir = test::temp_dir("store_folds");
  const SliceStore stored(test::tiny_folds_packed());
  std::vector<int32_t> folds = stored.folds().fold_of;
  const int32_t c = *cases_in(stored, "train").begin();
  const std::string name = stored.case_names()[static_cast<size_t>(c)];
  auto damaged = [&](const std::string& file, int32_t value, bool reseal) {
    test::copy_file(test::tiny_folds_packed(), file);
    std::vector<int32_t> changed = folds;
    changed[static_cast<size_t>(c)] = value;
    test::overwrite_dataset(file, format::kCaseFolds, H5T_NATIVE_INT32, changed.data(), reseal);
    return file;
  };
  // A disk's damage: the metadata checksum, which covers /case_folds.
  std::string file = damaged(dir + "/disk.h5", 2, false);
  std::string why = error_of([&] { SliceStore s(file); });
  EXPECT_NE(why.find("metadata checksum mismatch"), std::string::npos) << why;
  // A writer's: each value against the folds and the splits.
  file = damaged(dir + "/range.h5", 7, true);
  why = error_of([&] { SliceStore(file).verify(); });
  EXPECT_NE(why.find(file + ": /case_folds gives case " + std::to_string(c) + " (" + name + ") fold 7, outside -1"),
            std::string::npos) << why;
  file = damaged(dir + "/val.h5", 1, true);
  why = error_of([&] { SliceStore(file).verify(); });
  EXPECT_NE(why.find(file + ": /case_folds gives case " + std::to_string(c) + " (" + name + ") fold 1, but it is in "
                     "split 'train'"), std::string::npos) << why;
  file = damaged(dir + "/test.h5", -1, true);
  why = error_of([&] { SliceStore(file).verify(); });
  EXPECT_NE(why.find("fold -1, but it is in split 'train'"), std::string::npos) << why;
}

TEST(SliceStoreFolds, VerifyRecountsEachCasesClassPixels) {
  const std::string dir = test::temp_dir("store_case_counts");
  const SliceStore stored(test::tiny_folds_packed());
  const std::set<int32_t> train = cases_in(stored, "train");
  ASSERT_GE(train.size(), 2u);
  const int32_t a = *train.begin(), b = *std::next(train.begin());
  std::vector<int64_t> counts = stored.folds().class_voxels;
  const auto k = static_cast<size_t>(stored.num_classes());
  ASSERT_NE(std::vector<int64_t>(counts.begin() + a * k, counts.begin() + (a + 1) * k),
            std::vector<int64_t>(counts.begin() + b * k, counts.begin() + (b + 1) * k));
  // Two train cases' rows swapped: the split's sums still agree on open; verify recounts.
  std::swap_ranges(counts.begin() + a * k, counts.begin() + (a + 1) * k, counts.begin() + b * k);
  const std::string swapped = dir + "/swapped.h5";
  test::copy_file(test::tiny_folds_packed(), swapped);
  test::overwrite_dataset(swapped, format::kCaseClassVoxels, H5T_NATIVE_INT64, counts.data(), true);
  const SliceStore s(swapped);
  std::string why = error_of([&] { s.verify(); });
  EXPECT_NE(why.find(swapped + ": /case_class_voxels records class pixel counts"), std::string::npos) << why;
  EXPECT_NE(why.find("for case " + std::to_string(a) + " (" + stored.case_names()[static_cast<size_t>(a)] + ")"),
            std::string::npos) << why;
  // One count changed: the split's recorded sum disagrees, on open.
  counts = stored.folds().class_voxels;
  counts[a * k + 2] += 1;
  const std::string changed = dir + "/changed.h5";
  test::copy_file(test::tiny_folds_packed(), changed);
  test::overwrite_dataset(changed, format::kCaseClassVoxels, H5T_NATIVE_INT64, counts.data(), true);
  why = error_of([&] { SliceStore x(changed); });
  EXPECT_NE(why.find("/case_class_voxels of the cases of split 'train' sum to"), std::string::npos) << why;
}

}  // namespace
}  // namespace strata::data
