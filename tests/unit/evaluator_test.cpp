// The Evaluator in one process (rank 0 of a world of 1) on the tiny packed dataset:
// closed-form Dice/IoU of fixed models, TTA that must change nothing for an
// equivariant model, the prediction files, the report's JSON shape, the checkpoint
// loader's errors, and bad input.
#include "data_fixture.h"
#include "strata/brats/labels.h"
#include "strata/brats/predictions.h"
#include "strata/core/config.h"
#include "strata/dataprep/nifti.h"
#include "strata/eval/evaluator.h"
#include "strata/eval/report.h"
#include "strata/model/checkpoint.h"
#include "strata/model/model_loader.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

namespace strata::eval {
namespace {

namespace fs = std::filesystem;
using test::error_of;
using model::LoadedModel;
using model::load_unet;

constexpr int64_t kClasses = 4;

EvalSetup setup_for(const std::string& path, const std::string& tta, bool hd95 = true) {
  EvalSetup s;
  s.data.path = path;
  s.data.batch_size = 8;
  s.data.workers = 1;
  s.eval.tta = tta;
  s.eval.hd95 = hd95;
  s.labels = brats::eval_labels();
  s.progress = false;
  return s;
}

EvalReport evaluate_alone(const EvalSetup& setup, const SegmentationModel& model, const CasePrediction& on_case = {}) {
  Evaluator evaluator(setup, torch::kCPU, 0, 1, nullptr);
  return evaluator.run(model, on_case);
}

// Logits that make every pixel class `cls`, whatever the image.
SegmentationModel constant_model(int64_t cls) {
  return [cls](const torch::Tensor& x) {
    torch::Tensor out = torch::zeros({x.size(0), kClasses, x.size(2), x.size(3)});
    out.select(1, cls).fill_(1);
    return out;
  };
}

// Labels (int64 [n, H, W]) of the split's slices, grouped by case.
std::map<int32_t, torch::Tensor> labels_by_case(const data::SliceStore& store, const std::string& split) {
  std::map<int32_t, std::vector<int64_t>> slices;
  for (int64_t s : store.split(split)) slices[store.case_of(s)].push_back(s);
  std::map<int32_t, torch::Tensor> out;
  for (const auto& [c, idx] : slices) {
    torch::Tensor labels =
        torch::empty({static_cast<int64_t>(idx.size()), store.height(), store.width()}, torch::kLong);
    store.read_into(idx, torch::Tensor(), labels);
    out[c] = labels;
  }
  return out;
}

// 1 + the largest packed axial index of case `c` (the depth of its rebuilt volume).
int64_t depth_of(const data::SliceStore& store, int32_t c) {
  int64_t depth = 0;
  for (int64_t s = 0; s < store.num_slices(); ++s) {
    if (store.case_of(s) == c) depth = std::max<int64_t>(depth, store.z_of(s) + 1);
  }
  return depth;
}

const RegionResult& region(const EvalReport& r, const std::string& name) {
  for (const auto& g : r.regions) {
    if (g.name == name) return g;
  }
  throw std::runtime_error("no region " + name);
}

TEST(EvaluatorTest, ConstantModelHasClosedFormScores) {
  // Every pixel predicted edema (2). With G_k pixels of class k among P pixels in all:
  // Dice_2 = 2 G_2 / (G_2 + P), IoU_2 = G_2 / P; classes never predicted score 0 where
  // present. Per case: WT Dice = 2 WT / (WT + P_case); TC and ET are predicted empty,
  // so they score 0 where present (HD95 = the volume's diagonal) and 1 where absent (HD95 0).
  const std::string path = test::tiny_packed();
  EvalReport r = evaluate_alone(setup_for(path, "none"), constant_model(2));
  data::SliceStore store(path);
  const auto& val = store.split_info("val");
  const double pixels = static_cast<double>(val.slices.size() * store.height() * store.width());
  const auto g = val.class_voxels;
  ASSERT_GT(g[2], 0);
  ASSERT_EQ(r.classes.size(), 3u);
  EXPECT_EQ(r.classes[0].key, "necrotic");
  EXPECT_EQ(r.classes[2].label, "Enhancing Tumor (3)");
  EXPECT_NEAR(r.classes[1].dice, 2.0 * g[2] / (g[2] + pixels), 1e-12);
  EXPECT_NEAR(r.classes[1].iou, g[2] / pixels, 1e-12);
  EXPECT_EQ(r.classes[0].dice, g[1] > 0 ? 0.0 : 1.0);
  EXPECT_EQ(r.classes[2].iou, g[3] > 0 ? 0.0 : 1.0);
  EXPECT_NEAR(r.mean_dice, (r.classes[0].dice + r.classes[1].dice + r.classes[2].dice) / 3, 1e-12);
  EXPECT_EQ(r.slices, static_cast<int64_t>(val.slices.size()));
  EXPECT_EQ(r.cases, val.cases);
  EXPECT_EQ(r.confusion.sum().item<int64_t>(), static_cast<int64_t>(pixels));
  EXPECT_EQ(r.confusion.select(1, 2).sum().item<int64_t>(), static_cast<int64_t>(pixels));  // every pixel predicted 2

  auto cases = labels_by_case(store, "val");
  ASSERT_EQ(r.per_case.size(), cases.size());
  double wt_sum = 0, et_sum = 0;
  size_t i = 0;
  for (const auto& [c, labels] : cases) {
    const CaseResult& cr = r.per_case[i++];
    EXPECT_EQ(cr.name, store.case_names()[c]);
    EXPECT_EQ(cr.slices, labels.size(0));
    const double wt = (labels > 0).sum().item<double>(), p = static_cast<double>(labels.numel());
    const bool has_tc = ((labels == 1) | (labels == 3)).any().item<bool>(), has_et = (labels == 3).any().item<bool>();
    const double diag =
        std::sqrt(std::pow(depth_of(store, c), 2) + std::pow(store.height(), 2) + std::pow(store.width(), 2));
    // Report order: ET, TC, WT.
    EXPECT_NEAR(cr.dice[2], wt > 0 ? 2 * wt / (wt + p) : 0.0, 1e-12) << cr.name;
    EXPECT_EQ(cr.dice[1], has_tc ? 0.0 : 1.0) << cr.name;
    EXPECT_EQ(cr.dice[0], has_et ? 0.0 : 1.0) << cr.name;
    EXPECT_NEAR(cr.hd95[0], has_et ? diag : 0.0, 1e-9) << cr.name;
    EXPECT_NEAR(cr.hd95[1], has_tc ? diag : 0.0, 1e-9) << cr.name;
    wt_sum += cr.dice[2];
    et_sum += cr.dice[0];
  }
  EXPECT_NEAR(region(r, "WT").dice, wt_sum / cases.size(), 1e-12);
  EXPECT_NEAR(region(r, "ET").dice, et_sum / cases.size(), 1e-12);
  EXPECT_EQ(region(r, "WT").cases, static_cast<int64_t>(cases.size()));
}

TEST(EvaluatorTest, HalfPlaneModelMatchesDirectCounts) {
  // Necrotic core (1) on the left half of every slice, enhancing tumour (3) on the
  // right: Dice and IoU follow from the overlap of each half with the labels.
  const std::string path = test::tiny_packed();
  data::SliceStore store(path);
  const int64_t h = store.height(), w = store.width();
  torch::Tensor left = (torch::arange(w) < w / 2).view({1, w}).expand({h, w});
  SegmentationModel model = [left](const torch::Tensor& x) {
    torch::Tensor out = torch::zeros({x.size(0), kClasses, x.size(2), x.size(3)});
    out.select(1, 1).masked_fill_(left, 1);
    out.select(1, 3).masked_fill_(left.logical_not(), 1);
    return out;
  };
  EvalReport r = evaluate_alone(setup_for(path, "none", false), model);
  std::vector<torch::Tensor> parts;
  for (auto& [c, labels] : labels_by_case(store, "val")) parts.push_back(labels);
  torch::Tensor labels = torch::cat(parts);
  const double n = static_cast<double>(labels.size(0));
  for (int64_t k = 1; k < kClasses; ++k) {
    torch::Tensor predicted = k == 1 ? left : k == 3 ? left.logical_not() : torch::zeros_like(left);
    const double tp = ((labels == k) & predicted).sum().item<double>();
    const double p = n * predicted.sum().item<double>(), g = (labels == k).sum().item<double>();
    const double dice = (p + g) > 0 ? 2 * tp / (p + g) : 1.0, iou = (p + g) > 0 ? tp / (p + g - tp) : 1.0;
    EXPECT_NEAR(r.classes[k - 1].dice, dice, 1e-12) << "class " << k;
    EXPECT_NEAR(r.classes[k - 1].iou, iou, 1e-12) << "class " << k;
  }
  EXPECT_FALSE(r.hd95);
  EXPECT_TRUE(std::isnan(region(r, "ET").hd95));
}

// A 3x3 convolution whose kernels are symmetric under every flip and quarter turn
// (one weight for the centre, one for the edges, one for the corners): it commutes
// with every TTA view, on the square zero-padded slices.
SegmentationModel equivariant_conv(bool symmetric) {
  torch::manual_seed(3);
  torch::Tensor weight = torch::randn({kClasses, 4, 3, 3});
  if (symmetric) {
    torch::Tensor centre = torch::randn({kClasses, 4}), edge = torch::randn({kClasses, 4}),
                  corner = torch::randn({kClasses, 4});
    for (int y = 0; y < 3; ++y) {
      for (int x = 0; x < 3; ++x) {
        const int ring = std::abs(y - 1) + std::abs(x - 1);
        weight.select(2, y).select(2, x).copy_(ring == 0 ? centre : ring == 1 ? edge : corner);
      }
    }
  }
  return [weight](const torch::Tensor& x) { return torch::conv2d(x, weight, {}, 1, 1); };
}

TEST(EvaluatorTest, TtaChangesNothingForAnEquivariantModelAndSomethingOtherwise) {
  const std::string path = test::tiny_packed();
  EvalReport plain = evaluate_alone(setup_for(path, "none"), equivariant_conv(true));
  EvalReport tta = evaluate_alone(setup_for(path, "flips+rot90"), equivariant_conv(true));
  EXPECT_EQ(tta.views, 6);
  // If a view's prediction were not mapped back (or mapped back wrongly), the flipped
  // and turned predictions of these asymmetric slices would move pixels around.
  EXPECT_TRUE(torch::equal(plain.confusion, tta.confusion)) << plain.confusion << "\n" << tta.confusion;
  for (size_t i = 0; i < plain.per_case.size(); ++i) {
    for (size_t g = 0; g < 3; ++g) EXPECT_NEAR(plain.per_case[i].hd95[g], tta.per_case[i].hd95[g], 1e-9);
  }
  // The same check would notice TTA with a model that is not equivariant.
  EvalReport skew_plain = evaluate_alone(setup_for(path, "none", false), equivariant_conv(false));
  EvalReport skew_tta = evaluate_alone(setup_for(path, "flips", false), equivariant_conv(false));
  EXPECT_FALSE(torch::equal(skew_plain.confusion, skew_tta.confusion));
}

TEST(EvaluatorTest, InferenceRunsUnderTheConfiguredAutocast) {
  EXPECT_EQ(resolve_eval_amp("auto", torch::kCPU), nn::AmpMode::kOff);
  EXPECT_EQ(resolve_eval_amp("fp16", torch::kCPU), nn::AmpMode::kOff);  // no fp16 autocast on the CPU
  EXPECT_EQ(resolve_eval_amp("bf16", torch::kCPU), nn::AmpMode::kBf16);
  EXPECT_THROW(resolve_eval_amp("fp8", torch::kCPU), core::ConfigError);

  const std::string path = test::tiny_packed();
  SegmentationModel conv = equivariant_conv(true);
  std::set<c10::ScalarType> seen;
  SegmentationModel spy = [&](const torch::Tensor& x) {
    torch::Tensor logits = conv(x);
    seen.insert(logits.scalar_type());
    return logits;
  };
  EvalSetup setup = setup_for(path, "flips", false);
  setup.eval.amp = "bf16";
  EvalReport r = evaluate_alone(setup, spy);
  EXPECT_EQ(r.amp, "bf16");
  EXPECT_EQ(seen, std::set<c10::ScalarType>{torch::kBFloat16});
  EXPECT_EQ(r.confusion.sum().item<int64_t>(), r.slices * 32 * 32);
}

TEST(EvaluatorTest, PredictionsAreWrittenInThePackedGeometryWithBratsLabels) {
  const std::string path = test::tiny_packed();
  EvalSetup setup = setup_for(path, "flips", false);
  const std::string dir = test::temp_dir("predictions") + "/made";  // prediction_writer creates it
  data::SliceStore store(path);
  // every pixel enhancing tumour: BraTS label 4
  EvalReport r = evaluate_alone(setup, constant_model(3), brats::prediction_writer(dir, store.info().label_source_values));
  std::map<int32_t, std::set<int32_t>> packed_z;
  for (int64_t s : store.split("val")) packed_z[store.case_of(s)].insert(store.z_of(s));
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, packed_z.size());  // one per case, no temporary left behind
  for (const auto& [c, zs] : packed_z) {
    dataprep::Volume v = dataprep::read_nifti(dir + "/" + store.case_names()[c] + ".nii.gz");
    EXPECT_EQ(v.dims, (dataprep::Dims3{store.width(), store.height(), depth_of(store, c)}));
    EXPECT_EQ(v.datatype, 2);  // uint8
    for (int64_t k = 0; k < v.dims[2]; ++k) {
      const float want = zs.count(static_cast<int32_t>(k)) ? 4.0f : 0.0f;
      EXPECT_EQ(v.at(0, 0, k), want) << store.case_names()[c] << " z " << k;
      EXPECT_EQ(v.at(v.dims[0] - 1, v.dims[1] - 1, k), want);
    }
  }
  EXPECT_EQ(r.cases, static_cast<int64_t>(packed_z.size()));
}

// Another strategy through the seam: the Evaluator calls it once per batch and reports
// its name and passes, whatever it is (a sliding window needs no change to the Evaluator).
class CountingInferer final : public Inferer {
 public:
  torch::Tensor probabilities(const SegmentationModel& model, const torch::Tensor& images) const override {
    ++calls;
    return torch::softmax(model(images).to(torch::kFloat), 1);
  }
  std::string describe() const override { return "counting"; }
  int64_t passes() const override { return 1; }
  void check_slices(int64_t, int64_t, const std::string&) const override {}
  mutable int64_t calls = 0;
};

TEST(EvaluatorTest, AnInfererGivenInTheSetupIsCalledOncePerBatch) {
  const std::string path = test::tiny_packed();
  EvalSetup setup = setup_for(path, "flips+rot90", false);
  auto counting = std::make_shared<CountingInferer>();
  setup.inferer = counting;
  Evaluator evaluator(setup, torch::kCPU, 0, 1, nullptr);
  EXPECT_EQ(&evaluator.inferer(), counting.get());
  EvalReport r = evaluator.run(constant_model(2));
  EXPECT_EQ(counting->calls, evaluator.sampler().num_batches());
  EXPECT_EQ(r.tta, "counting");
  EXPECT_EQ(r.views, 1);
  EvalReport tta = evaluate_alone(setup_for(path, "none", false), constant_model(2));
  EXPECT_EQ(r.confusion.equal(tta.confusion), true);  // the same counts as TTA none
}

TEST(EvaluatorTest, LabelsComeFromTheTaskAndMustNameEveryClassOfTheFile) {
  const std::string path = test::tiny_packed();
  EvalSetup setup = setup_for(path, "none", false);
  setup.labels.classes = {{"a", "Class A"}, {"b", "Class B"}, {"c", "Class C"}};
  setup.labels.regions = {{"AB", {1, 2}}};
  EvalReport r = evaluate_alone(setup, constant_model(2));
  ASSERT_EQ(r.classes.size(), 3u);
  EXPECT_EQ(r.classes[1].key, "b");
  EXPECT_EQ(r.classes[1].label, "Class B");
  ASSERT_EQ(r.regions.size(), 1u);
  EXPECT_EQ(r.regions[0].name, "AB");
  ASSERT_EQ(r.per_case[0].dice.size(), 1u);
  setup.labels.classes.pop_back();
  const std::string msg = error_of([&] { Evaluator e(setup, torch::kCPU, 0, 1, nullptr); });
  EXPECT_NE(msg.find("the task names 2 classes but background, and '" + path + "' has 3"), std::string::npos) << msg;
}

TEST(EvaluatorTest, PredictionFilesKeepTheSliceOrientation) {
  // pred[k][j][i] must become voxel (i, j, k): column i, row j of slice k.
  torch::Tensor pred = torch::empty({3, 4, 5}, torch::kByte);
  auto a = pred.accessor<uint8_t, 3>();
  for (int k = 0; k < 3; ++k)
    for (int j = 0; j < 4; ++j)
      for (int i = 0; i < 5; ++i) a[k][j][i] = static_cast<uint8_t>((i + 2 * j + k) % 4);
  const std::string dir = test::temp_dir("orientation");
  const std::string file = brats::write_prediction(dir, "case_a", pred, {0, 1, 2, 4});
  dataprep::Volume v = dataprep::read_nifti(file);
  ASSERT_EQ(v.dims, (dataprep::Dims3{5, 4, 3}));
  const float lut[4] = {0, 1, 2, 4};
  for (int k = 0; k < 3; ++k)
    for (int j = 0; j < 4; ++j)
      for (int i = 0; i < 5; ++i) EXPECT_EQ(v.at(i, j, k), lut[(i + 2 * j + k) % 4]);
  EXPECT_NE(error_of([&] { brats::write_prediction(dir, "case_b", pred, {0, 1}); }).find("label values"),
            std::string::npos);
}

TEST(EvaluatorTest, PredictionWriterNamesAFolderItCannotCreate) {
  const std::string file = test::temp_dir("writer") + "/a_file";
  std::ofstream(file) << "x";
  const std::string dir = file + "/predictions";  // under a regular file
  const std::vector<int64_t> values{0, 1, 2, 4};
  EXPECT_THROW(brats::prediction_writer(dir, values), core::IoError);
  EXPECT_NE(error_of([&] { brats::prediction_writer(dir, values); })
                .find("cannot create the predictions folder '" + dir + "'"),
            std::string::npos);
}

TEST(EvaluatorTest, JsonHasExactlyTheDocumentedShape) {
  const std::string path = test::tiny_packed();
  EvalSetup setup = setup_for(path, "flips");
  setup.eval.metrics.empty = "exclude";
  EvalReport r = evaluate_alone(setup, constant_model(0));  // nothing predicted: excluded empties are NaN
  nlohmann::json j = nlohmann::json::parse(report_json(r));
  std::set<std::string> keys;
  for (auto& [k, v] : j.items()) keys.insert(k);
  EXPECT_EQ(keys, (std::set<std::string>{"per_class", "mean_dice", "mean_iou", "regions", "per_case", "tta", "models",
                                         "slices", "cases", "ranks", "confusion", "hd95_unit"}));
  EXPECT_EQ(j["models"], 1);
  EXPECT_EQ(j["hd95_unit"], "packed voxels");
  // The confusion matrix: rows the truth, columns the prediction; a model that predicts
  // background everywhere puts every pixel in column 0, and the rows hold the truth's counts.
  const auto& px = j["confusion"]["pixels"];
  ASSERT_EQ(px.size(), 4u);
  int64_t total = 0;
  for (size_t t = 0; t < 4; ++t) {
    ASSERT_EQ(px[t].size(), 4u);
    for (size_t p = 1; p < 4; ++p) EXPECT_EQ(px[t][p], 0) << t << "," << p;
    EXPECT_EQ(px[t][0], r.confusion[t][0].item<int64_t>());
    total += px[t][0].get<int64_t>();
  }
  EXPECT_EQ(total, r.slices * 32 * 32);
  EXPECT_GT(px[2][0].get<int64_t>(), 0);  // edema in the truth
  ASSERT_EQ(j["per_case"].size(), r.per_case.size());
  EXPECT_EQ(j["per_case"][0]["case"], r.per_case[0].name);
  EXPECT_EQ(j["per_case"][0]["slices"], r.per_case[0].slices);
  EXPECT_TRUE(j["per_case"][0]["WT"].contains("dice"));
  const std::string csv = report_csv(r);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), static_cast<std::ptrdiff_t>(r.per_case.size() + 1));
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "case,slices,ET_dice,ET_hd95,TC_dice,TC_hd95,WT_dice,WT_hd95");
  for (const char* c : {"necrotic", "edema", "enhancing"}) {
    ASSERT_TRUE(j["per_class"].contains(c)) << c;
    EXPECT_EQ(j["per_class"][c].size(), 2u);
    EXPECT_TRUE(j["per_class"][c]["dice"].is_number());
  }
  for (const char* g : {"ET", "TC", "WT"}) {
    ASSERT_TRUE(j["regions"].contains(g)) << g;
    EXPECT_EQ(j["regions"][g].size(), 2u);
    EXPECT_TRUE(j["regions"][g].contains("hd95"));
  }
  EXPECT_EQ(j["tta"], "flips");
  EXPECT_EQ(j["slices"], r.slices);
  EXPECT_EQ(j["ranks"], 1);
  EXPECT_EQ(j["per_class"]["edema"]["dice"].get<double>(), 0.0);
  // Cases without enhancing tumour are excluded: a mean of the rest, or null when none is left.
  const RegionResult& et = region(r, "ET");
  EXPECT_EQ(std::isnan(et.dice), j["regions"]["ET"]["dice"].is_null());

  const std::string out = test::temp_dir("json") + "/sub/eval.json";
  write_report_json(r, out);
  std::ifstream in(out);
  EXPECT_EQ(nlohmann::json::parse(in), j);
  EXPECT_EQ(std::distance(fs::directory_iterator(fs::path(out).parent_path()), fs::directory_iterator()), 1);

  const std::string table = format_report(r);
  for (const char* row : {"| Mean (tumour classes) |", "| Necrotic Core (1)", "| Edema (2)", "| Enhancing Tumor (3)",
                          "| :--- | :--- | :--- |", "| ET ", "| TC ", "| WT ", "ms per slice"}) {
    EXPECT_NE(table.find(row), std::string::npos) << row << "\n" << table;
  }
}

TEST(EvaluatorTest, BadInputIsAClearErrorBeforeAnyWork) {
  const std::string path = test::tiny_packed();
  auto construct = [&](EvalSetup s, int rank, int world) { Evaluator e(s, torch::kCPU, rank, world, nullptr); };

  EvalSetup other = setup_for(path, "none");
  other.eval.split = "test";
  std::string msg = error_of([&] { construct(other, 0, 1); });
  EXPECT_NE(msg.find("test"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;

  // The tiny file's val split has 2 cases: a third rank would have nothing to evaluate.
  msg = error_of([&] { construct(setup_for(path, "none"), 0, 3); });
  EXPECT_NE(msg.find("has 2 case(s), fewer than the 3 ranks"), std::string::npos) << msg;
  msg = error_of([&] { construct(setup_for(path, "none"), 0, 2); });
  EXPECT_NE(msg.find("need a communicator"), std::string::npos) << msg;

  // A file packed without validation cases.
  const std::string noval = test::temp_dir("noval") + "/noval.h5";
  dataprep::PackOptions po = test::tiny_pack_options(noval);
  po.val_fraction = 0;
  dataprep::pack_dataset(po);
  msg = error_of([&] { construct(setup_for(noval, "none"), 0, 1); });
  EXPECT_NE(msg.find("the 'val' split of '" + noval + "' is empty"), std::string::npos) << msg;

  Evaluator ok(setup_for(path, "none"), torch::kCPU, 0, 1, nullptr);
  nn::UNetConfig unet;
  unet.widths = {4, 8};
  EXPECT_EQ(error_of([&] { ok.check_model(unet.io(), "test"); }), "");
  unet.in_channels = 3;
  EXPECT_NE(error_of([&] { ok.check_model(unet.io(), "test"); }).find("takes 3 input channels"), std::string::npos);
  unet.in_channels = 4;
  unet.num_classes = 5;
  EXPECT_NE(error_of([&] { ok.check_model(unet.io(), "test"); }).find("predicts 5 classes"), std::string::npos);
  unet.num_classes = 4;
  unet.widths = {2, 2, 2, 2, 2, 2, 2};  // inputs must be multiples of 64
  EXPECT_NE(error_of([&] { ok.check_model(unet.io(), "test"); }).find("multiples of 64"), std::string::npos);

  SegmentationModel three_classes = [](const torch::Tensor& x) {
    return torch::zeros({x.size(0), 3, x.size(2), x.size(3)});
  };
  EXPECT_NE(error_of([&] { ok.run(three_classes); }).find("(4 classes)"), std::string::npos);
}

// --- the checkpoint loader ---

void write_checkpoint(const std::string& path, const std::string& model_yaml, nn::UNet2d* weights) {
  torch::serialize::OutputArchive archive;
  model::CheckpointMeta meta;
  meta.config_yaml = "run: {}";
  meta.model_yaml = model_yaml;
  meta.epoch = 3;
  model::write_meta(archive, meta);
  if (weights) {
    torch::serialize::OutputArchive w;
    (*weights)->save(w);
    archive.write("model", w);
  }
  model::save_atomic(archive, path);
}

nn::UNet2d unet_of(std::vector<int64_t> widths) {
  nn::UNetConfig c;
  c.widths = std::move(widths);
  return nn::UNet2d(c);
}

std::string yaml_of(std::vector<int64_t> widths) {
  nn::UNetConfig c;
  c.widths = std::move(widths);
  return core::to_yaml(c);
}

TEST(ModelLoaderTest, LoadsTheStoredArchitectureAndItsWeights) {
  const std::string dir = test::temp_dir("ckpt_ok");
  torch::manual_seed(9);
  nn::UNet2d saved = unet_of({4, 8});
  torch::NoGradGuard no_grad;
  // Trained BatchNorm statistics, not the defaults (mean 0, var 1): a loader that drops
  // the buffers and keeps a fresh model's would give other eval-mode outputs.
  saved->train();
  for (int k = 0; k < 3; ++k) saved->forward(torch::randn({4, 4, 16, 16}) * 3 + 2);
  saved->eval();
  int moved = 0;
  for (const auto& b : saved->named_buffers()) {
    if (b.key().find("running_mean") != std::string::npos) moved += b.value().abs().sum().item<double>() > 0.1;
  }
  ASSERT_GT(moved, 0) << "the running statistics did not move: the check below would be vacuous";
  write_checkpoint(dir + "/a.pt", yaml_of({4, 8}), &saved);
  LoadedModel loaded = load_unet(dir + "/a.pt", torch::kCPU);
  EXPECT_EQ(loaded.meta.epoch, 3);
  EXPECT_EQ(loaded.model->config().widths, (std::vector<int64_t>{4, 8}));
  EXPECT_FALSE(loaded.model->is_training());
  auto theirs = loaded.model->named_buffers();
  for (const auto& b : saved->named_buffers()) {
    ASSERT_TRUE(theirs.contains(b.key())) << b.key();
    EXPECT_TRUE(torch::equal(theirs[b.key()], b.value())) << b.key();
  }
  torch::Tensor x = torch::randn({2, 4, 16, 16}) * 3 + 2;
  EXPECT_TRUE(torch::equal(loaded.model->forward(x), saved->forward(x)));
}

// The CheckpointError of loading `path`.
std::string load_error(const std::string& path) {
  try {
    load_unet(path, torch::kCPU);
  } catch (const core::CheckpointError& e) {
    return e.what();
  }
  return "no CheckpointError";
}

// Weights or BatchNorm statistics that went NaN or Inf before the checkpoint was saved:
// evaluate and predict (both load through load_unet) refuse them, naming the tensor.
TEST(ModelLoaderTest, NonFiniteWeightsAndBuffersAreRefusedNamingTheTensor) {
  const std::string dir = test::temp_dir("ckpt_nan");
  torch::NoGradGuard no_grad;
  nn::UNet2d nan_weight = unet_of({4, 8});
  nan_weight->named_parameters()["enc.1.conv2.weight"].view(-1)[5] = NAN;
  write_checkpoint(dir + "/nan.pt", yaml_of({4, 8}), &nan_weight);
  std::string msg = load_error(dir + "/nan.pt");
  EXPECT_NE(msg.find("'" + dir + "/nan.pt' holds non-finite weights: the parameter 'enc.1.conv2.weight' holds 1 "
                     "non-finite value(s) (NaN)"),
            std::string::npos)
      << msg;

  nn::UNet2d inf_buffer = unet_of({4, 8});
  inf_buffer->named_buffers()["enc.0.norm1.running_var"].fill_(INFINITY);
  write_checkpoint(dir + "/inf.pt", yaml_of({4, 8}), &inf_buffer);
  msg = load_error(dir + "/inf.pt");
  EXPECT_NE(msg.find("the buffer 'enc.0.norm1.running_var' holds 4 non-finite value(s) (Inf)"), std::string::npos)
      << msg;
}

TEST(ModelLoaderTest, ForeignBrokenAndMismatchedCheckpointsAreCheckpointErrors) {
  const std::string dir = test::temp_dir("ckpt_bad");
  EXPECT_NE(load_error(dir + "/missing.pt").find("does not exist"), std::string::npos);

  std::ofstream(dir + "/garbage.pt") << "not a checkpoint";
  EXPECT_NE(load_error(dir + "/garbage.pt").find("corrupt or not a libtorch archive"), std::string::npos);

  nn::UNet2d small = unet_of({4, 8});
  write_checkpoint(dir + "/good.pt", yaml_of({4, 8}), &small);
  const auto size = fs::file_size(dir + "/good.pt");
  test::copy_file(dir + "/good.pt", dir + "/truncated.pt");
  fs::resize_file(dir + "/truncated.pt", size / 2);
  EXPECT_NE(load_error(dir + "/truncated.pt").find("truncated.pt"), std::string::npos);

  torch::serialize::OutputArchive plain;  // a libtorch archive, but not a Strata checkpoint
  plain.write("weights", torch::ones({2}));
  plain.save_to(dir + "/plain.pt");
  EXPECT_NE(load_error(dir + "/plain.pt").find("is not a Strata checkpoint"), std::string::npos);

  write_checkpoint(dir + "/no_weights.pt", yaml_of({4, 8}), nullptr);
  EXPECT_NE(load_error(dir + "/no_weights.pt").find("no model weights"), std::string::npos);

  write_checkpoint(dir + "/bad_section.pt", "widths: []\n", &small);
  EXPECT_NE(load_error(dir + "/bad_section.pt").find("not a valid U-Net config"), std::string::npos);

  // Weights of widths [4, 8] under a model section that says [8, 16]: libtorch would
  // load them silently; the loader names the first parameter that does not fit.
  write_checkpoint(dir + "/wider.pt", yaml_of({8, 16}), &small);
  std::string msg = load_error(dir + "/wider.pt");
  EXPECT_NE(msg.find("do not fit its model section"), std::string::npos) << msg;
  EXPECT_NE(msg.find("has shape [4, 4, 3, 3] where that architecture needs [8, 4, 3, 3]"), std::string::npos) << msg;

  // A section with one level more than the weights have.
  write_checkpoint(dir + "/deeper.pt", yaml_of({4, 8, 16}), &small);
  msg = load_error(dir + "/deeper.pt");
  EXPECT_NE(msg.find("do not fit its model section"), std::string::npos) << msg;
}

}  // namespace
}  // namespace strata::eval
