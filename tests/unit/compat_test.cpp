// Files of every older format Strata still reads load and give the values they were
// written with: checkpoint format 1 (no checksums), packed slice format 1 (no source
// geometry) and 2 (case names in HDF5's global heap, no metadata checksum). The files
// are committed, as the older-format seeds of tests/fuzz/corpus (STRATA_CORPUS_DIR).
#include "strata/data/format.h"
#include "strata/data/slice_store.h"
#include "strata/model/checkpoint.h"
#include "strata/model/model_loader.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

namespace strata {
namespace {

std::string corpus(const std::string& name) {
  const char* dir = std::getenv("STRATA_CORPUS_DIR");
  EXPECT_NE(dir, nullptr) << "STRATA_CORPUS_DIR is not set (ctest sets it)";
  return std::string(dir ? dir : ".") + "/" + name;
}

// Every slice's image and labels, and the store's case names.
struct StoreValues {
  int64_t version = 0, slices = 0;
  std::vector<std::string> cases;
  std::vector<float> images;
  std::vector<uint8_t> labels;
};

StoreValues read_store(const std::string& path) {
  data::SliceStore store(path);
  const int64_t n = store.num_slices();
  StoreValues v{store.info().format_version, n, store.case_names(), {}, {}};
  std::vector<int64_t> all(static_cast<size_t>(n));
  std::iota(all.begin(), all.end(), 0);
  std::vector<c10::Half> images(static_cast<size_t>(n * store.image_bytes() / 2));
  v.labels.resize(static_cast<size_t>(n * store.label_bytes()));
  store.read(all.data(), n, images.data(), v.labels.data());
  for (c10::Half h : images) v.images.push_back(static_cast<float>(h));
  return v;
}

TEST(Compat, CheckpointFormat1LoadsItsWeights) {
  model::LoadedModel old = model::load_unet(corpus("checkpoint/last_format1.pt"), torch::Device(torch::kCPU));
  EXPECT_EQ(old.meta.format, 1);
  EXPECT_LT(old.meta.format, model::kCheckpointFormat);
  EXPECT_EQ(old.meta.epoch, 1);
  EXPECT_EQ(old.model->config().widths, (std::vector<int64_t>{4, 8}));
  // The hash of the weights as stored: the same bytes come back, on any machine.
  EXPECT_EQ(model::weights_hash(*old.model), "a266ec00cbc93e44");
}

TEST(Compat, PackedFormats1And2ReadAsTheCurrentOne) {
  // The same two cases packed at 16x16: as format 3 (packed16.h5, the current packer),
  // format 2 (an earlier packer) and format 1 (the format-2 file without its case_*
  // geometry, as a format-1 packer wrote it).
  const StoreValues now = read_store(corpus("slice_store/packed16.h5"));
  EXPECT_EQ(now.version, data::format::kFormatVersion);
  EXPECT_EQ(now.slices, 13);
  EXPECT_EQ(now.cases, (std::vector<std::string>{"BraTS2021_00000", "BraTS2021_00001"}));
  EXPECT_EQ(std::accumulate(now.labels.begin(), now.labels.end(), int64_t{0}), 800);
  for (int64_t version = data::format::kOldestReadableVersion; version < data::format::kFormatVersion; ++version) {
    SCOPED_TRACE(version);
    const StoreValues old = read_store(corpus(fmt::format("slice_store/packed16_v{}.h5", version)));
    EXPECT_EQ(old.version, version);
    EXPECT_EQ(old.slices, now.slices);
    EXPECT_EQ(old.cases, now.cases);
    EXPECT_EQ(old.images, now.images);
    EXPECT_EQ(old.labels, now.labels);
  }
}

}  // namespace
}  // namespace strata
