// The preprocessing path and its inverse (data/preprocess.h): a case's labels, packed
// and mapped back through labels_from_probabilities, give the original labels except
// near class boundaries that the resize blurs; at the packed size equal to the crop side
// the round trip is exact. The packer's slices are the same function's output. The 3D
// crop to the brain's box and its inverse are exact.
#include "data_fixture.h"
#include "strata/dataprep/packer.h"
#include "strata/dataprep/preprocess.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace strata::dataprep {
namespace {

// Packs the labels of every slice, turns them into one-hot probabilities and maps them back.
double round_trip_agreement(int64_t size, int64_t* brain_voxels) {
  auto files = find_cases(test::tiny_cases());
  CaseVolumes v = read_case(files[0]);
  std::vector<uint8_t> labels = v.labels;
  NormalisedCase c = normalise_case(std::move(v.modalities), size, files[0].name);
  const auto& g = c.geometry;
  std::vector<int32_t> all;
  for (int32_t k = 0; k < g.dims[2]; ++k) all.push_back(k);
  torch::Tensor packed = slice_labels(labels, g, all);  // [nz, size, size]
  torch::Tensor probs = torch::one_hot(packed.to(torch::kLong), 4).permute({0, 3, 1, 2}).to(torch::kFloat);
  std::vector<uint8_t> back = labels_from_probabilities(probs, g, c.brain);
  int64_t same = 0, n = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (!c.brain[i]) {
      EXPECT_EQ(back[i], 0) << "outside the brain is background";
      continue;
    }
    ++n;
    same += back[i] == labels[i];
  }
  *brain_voxels = n;
  return static_cast<double>(same) / static_cast<double>(n);
}

TEST(Preprocess, LabelsPackedAndMappedBackAgreeExceptAtResizeBoundaries) {
  // The crop side of the tiny cases' first case, to pack at exactly that size.
  auto files = find_cases(test::tiny_cases());
  CaseVolumes v = read_case(files[0]);
  const int64_t side = normalise_case(std::move(v.modalities), 32, files[0].name).geometry.side;
  int64_t n = 0;
  const double exact = round_trip_agreement(side, &n);
  EXPECT_EQ(exact, 1.0) << "at size == side nothing is resized: the way back must be exact";
  const double down = round_trip_agreement(side / 2, &n);
  std::printf("round trip of %lld brain voxels: %.4f agree at size %lld (half the crop side %lld)\n",
              static_cast<long long>(n), down, static_cast<long long>(side / 2), static_cast<long long>(side));
  EXPECT_GT(down, 0.97);
  EXPECT_LT(down, 1.0) << "halving the resolution should lose some boundary voxels";
}

// The 3D path: a case's labels cropped to the brain's box and put back are the labels
// wherever the brain is (every labelled voxel lies in its box), and background elsewhere.
TEST(Preprocess, VolumeLabelsCroppedAndPutBackAreExact) {
  auto files = find_cases(test::tiny_cases());
  CaseVolumes v = read_case(files[0]);
  std::vector<uint8_t> labels = v.labels;
  NormalisedCase c = normalise_case(std::move(v.modalities), 0, files[0].name);
  const BrainBox box = brain_box(c);
  const auto& d = c.geometry.dims;
  EXPECT_LT(box.size[0] * box.size[1] * box.size[2], d[0] * d[1] * d[2]) << "the box should crop something";
  std::vector<uint8_t> back = uncrop_classes(crop_labels(labels, d, box), d, box, c.brain);
  int64_t tumour = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    ASSERT_EQ(back[i], c.brain[i] ? labels[i] : 0) << "voxel " << i;
    tumour += labels[i] != 0;
  }
  EXPECT_GT(tumour, 0);
  // A box of the wrong shape is refused.
  EXPECT_THROW(uncrop_classes(torch::zeros({1, 2, 3}, torch::kByte), d, box, c.brain), std::exception);
}

// The probabilities in the source's geometry (predict --save-probabilities) are the
// labels' source: their argmax is the label volume, voxel for voxel, in 2D and 3D; each
// voxel's values sum to 1 and outside the brain the background is certain.
TEST(Preprocess, ProbabilitiesInTheSourceGeometryArgmaxToTheLabels) {
  auto files = find_cases(test::tiny_cases());
  CaseVolumes v = read_case(files[0]);
  NormalisedCase c = normalise_case(std::move(v.modalities), 24, files[0].name);
  const auto& g = c.geometry;
  const int64_t voxels = g.dims[0] * g.dims[1] * g.dims[2];
  auto check = [&](const torch::Tensor& p, const std::vector<uint8_t>& labels, const char* what) {
    ASSERT_EQ(p.sizes().vec(), (std::vector<int64_t>{4, g.dims[2], g.dims[1], g.dims[0]})) << what;
    torch::Tensor cls = p.argmax(0).to(torch::kByte).contiguous().view({-1});
    int64_t differ = 0;
    for (int64_t i = 0; i < voxels; ++i) differ += cls[i].item<uint8_t>() != labels[static_cast<size_t>(i)];
    EXPECT_EQ(differ, 0) << what;
    EXPECT_TRUE(torch::allclose(p.sum(0), torch::ones({g.dims[2], g.dims[1], g.dims[0]}), 1e-5, 1e-5)) << what;
    torch::Tensor outside = torch::tensor(c.brain).view({g.dims[2], g.dims[1], g.dims[0]}).eq(0);
    EXPECT_TRUE(torch::all(p[0].masked_select(outside).eq(1)).item<bool>()) << what;
  };
  torch::manual_seed(1);
  torch::Tensor slices = torch::softmax(torch::randn({g.dims[2], 4, 24, 24}), 1);
  check(probabilities_in_source(slices, g, c.brain), labels_from_probabilities(slices, g, c.brain), "2D");

  NormalisedCase whole = normalise_case(std::move(read_case(files[0]).modalities), 0, files[0].name);
  const BrainBox box = brain_box(whole);
  torch::Tensor boxed = torch::softmax(torch::randn({4, box.size[0], box.size[1], box.size[2]}), 0);
  const std::vector<uint8_t> classes = uncrop_classes(boxed.argmax(0).to(torch::kByte), whole.geometry.dims, box,
                                                      whole.brain);
  c = std::move(whole);
  check(uncrop_probabilities(boxed, c.geometry.dims, box, c.brain), classes, "3D");
  EXPECT_THROW(uncrop_probabilities(boxed.narrow(1, 0, 1), c.geometry.dims, box, c.brain), std::exception);
}

TEST(Preprocess, PackedSlicesAreThePreprocessingOutput) {
  // The packer stores float16 of slice_images(): the same bits predict feeds the network.
  auto files = find_cases(test::tiny_cases());
  PackOptions o = test::tiny_pack_options("unused.h5");
  PreparedCase p = prepare_case(files[0], o);
  ASSERT_FALSE(p.z.empty());
  CaseVolumes v = read_case(files[0]);
  NormalisedCase c = normalise_case(std::move(v.modalities), o.size, files[0].name);
  torch::Tensor mine = slice_images(c, p.z).to(torch::kHalf).contiguous();
  ASSERT_EQ(static_cast<size_t>(mine.numel()), p.images.size());
  EXPECT_EQ(std::memcmp(mine.data_ptr(), p.images.data(), p.images.size() * 2), 0);
  EXPECT_EQ(c.geometry.side, p.geometry.side);
  EXPECT_EQ(c.geometry.crop_i, p.geometry.crop_i);
}

}  // namespace
}  // namespace strata::dataprep
