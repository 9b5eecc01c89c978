// The cross-validation summary of `train --folds`: which validation is a fold's best, and
// the mean and standard deviation over folds, key by key.
#include "strata/core/error.h"
#include "strata/train/cross_validation.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

namespace strata::train {
namespace {

using nlohmann::json;

std::string metrics_file(const std::string& name, const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / name;
  std::ofstream(path) << text;
  return path.string();
}

const MetricSpec kDice{"mean_dice", true, -1};

TEST(CrossValidation, TheBestValidationIsTheFirstOfTheBestAndSkipsEpochsWithout) {
  const std::string path = metrics_file("cv_best.jsonl",
                                        "{\"epoch\":1,\"step\":4,\"train_loss\":0.9}\n"
                                        "{\"epoch\":2,\"step\":8,\"val\":{\"mean_dice\":0.5,\"dice\":[1,0]}}\n"
                                        "{\"epoch\":3,\"step\":12,\"val\":{\"mean_dice\":0.7,\"dice\":[1,0.4]}}\n"
                                        "{\"epoch\":4,\"step\":16,\"val\":{\"mean_dice\":0.7,\"dice\":[1,0.4]}}\n"
                                        "{\"epoch\":5,\"step\":20,\"val\":{\"mean_dice\":0.6,\"dice\":[1,0.2]}}\n");
  const json best = json::parse(best_validation(path, kDice));
  EXPECT_EQ(best["epoch"], 3);
  EXPECT_EQ(best["step"], 12);
  EXPECT_DOUBLE_EQ(best["val"]["mean_dice"].get<double>(), 0.7);
  // Lower is better for a loss.
  const json low = json::parse(best_validation(path, MetricSpec{"mean_dice", false, 1e30}));
  EXPECT_EQ(low["epoch"], 2);
  EXPECT_EQ(best_validation(metrics_file("cv_none.jsonl", "{\"epoch\":1}\n"), kDice), "");
}

TEST(CrossValidation, ABrokenLineOrAMissingMetricNamesTheFileAndLine) {
  const std::string broken = metrics_file("cv_broken.jsonl", "{\"epoch\":1,\"val\":{\"mean_dice\":0.5}}\n{\"epo");
  try {
    best_validation(broken, kDice);
    FAIL() << "no error";
  } catch (const core::DataError& e) {
    EXPECT_NE(std::string(e.what()).find(broken + " line 2"), std::string::npos) << e.what();
  }
  const std::string other = metrics_file("cv_other.jsonl", "{\"epoch\":1,\"val\":{\"accuracy\":0.5}}\n");
  EXPECT_THROW(best_validation(other, kDice), core::DataError);
}

TEST(CrossValidation, TheSummaryHasTheMeanAndPopulationStdOfEveryNumberAndArray) {
  const std::string f0 = R"({"epoch":3,"step":9,"val":{"mean_dice":0.6,"dice":[1.0,0.2],"slices":10,"name":"a"}})";
  const std::string f1 = R"({"epoch":2,"step":6,"val":{"mean_dice":0.8,"dice":[0.8,0.6],"slices":14,"name":"b"}})";
  const json s = json::parse(summarize_folds({f0, f1, ""}, kDice));
  EXPECT_EQ(s["folds"], 3);
  EXPECT_EQ(s["folds_validated"], 2);
  EXPECT_EQ(s["metric"], "mean_dice");
  EXPECT_TRUE(s["per_fold"][2].is_null());
  EXPECT_EQ(s["per_fold"][1]["epoch"], 2);
  EXPECT_NEAR(s["mean"]["mean_dice"].get<double>(), 0.7, 1e-15);
  EXPECT_NEAR(s["std"]["mean_dice"].get<double>(), 0.1, 1e-15);
  EXPECT_NEAR(s["mean"]["dice"][0].get<double>(), 0.9, 1e-15);
  EXPECT_NEAR(s["std"]["dice"][1].get<double>(), 0.2, 1e-15);
  EXPECT_DOUBLE_EQ(s["mean"]["slices"].get<double>(), 12);
  EXPECT_FALSE(s["mean"].contains("name"));  // not a number: per fold only
  const auto lines = summary_lines(s.dump());
  ASSERT_EQ(lines.size(), 3u);  // dice, mean_dice, slices (JSON key order)
  EXPECT_EQ(lines[1], "mean_dice 0.7000 +- 0.1000 (fold 0 0.6000, fold 1 0.8000)");
  EXPECT_EQ(lines[2], "slices 12 +- 2 (fold 0 10, fold 1 14)");
}

}  // namespace
}  // namespace strata::train
