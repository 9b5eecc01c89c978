// progress.png from metrics.jsonl (progress_plot.h).
#include "strata/viz/progress_plot.h"

#include "strata/core/error.h"
#include "strata/viz/chart.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <map>

namespace strata::viz {
namespace {

constexpr int kAverageWindow = 5;  // epochs in the moving averages

double number(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : NAN;
}

Axes axes(const char* title, const char* y_label) {
  Axes a;
  a.title = title;
  a.x_label = "epoch";
  a.integer_x = true;
  a.y_label = y_label;
  return a;
}

}  // namespace

std::vector<EpochRow> read_epoch_rows(const std::string& path) {
  std::ifstream in(path);
  STRATA_CHECK_AS(IoError, in.good(), "cannot read '{}'", path);
  std::map<int64_t, EpochRow> by_epoch;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      STRATA_THROW(DataError, "{} line {} is not JSON: {}", path, n, e.what());
    }
    STRATA_CHECK_AS(DataError, j.is_object() && j.contains("epoch") && j["epoch"].is_number_integer(),
                    "{} line {} has no integer \"epoch\"", path, n);
    if (j.value("partial", false)) continue;
    EpochRow r;
    r.epoch = j["epoch"].get<double>();
    r.train_loss = number(j, "train_loss");
    r.lr = number(j, "lr");
    r.epoch_s = number(j, "epoch_s");
    r.slices_per_s = number(j, "slices_per_s");
    r.data_wait = number(j, "data_wait");
    r.exposed_comm_s = number(j, "exposed_comm_s");
    r.step = j.value("step", int64_t{0});
    r.ranks = j.value("ranks", int64_t{0});
    if (j.contains("val") && j["val"].is_object()) {
      r.mean_dice = number(j["val"], "mean_dice");
      for (const auto& d : j["val"].value("dice", nlohmann::json::array())) r.dice.push_back(d.is_number() ? d.get<double>() : NAN);
    }
    by_epoch[j["epoch"].get<int64_t>()] = r;
  }
  std::vector<EpochRow> rows;
  for (auto& [e, r] : by_epoch) rows.push_back(std::move(r));
  return rows;
}

void write_progress_plot(const std::vector<EpochRow>& rows, const std::string& png, const std::string& title,
                         const ClassStyle& style) {
  style.check("progress plot");
  std::vector<double> epoch, loss, dice, lr, seconds, rate;
  size_t classes = 0;
  for (const auto& r : rows) classes = std::max(classes, r.dice.size());
  std::vector<std::vector<double>> per_class(classes);
  for (const auto& r : rows) {
    epoch.push_back(r.epoch);
    loss.push_back(r.train_loss);
    dice.push_back(r.mean_dice);
    lr.push_back(r.lr);
    seconds.push_back(r.epoch_s);
    rate.push_back(r.slices_per_s);
    for (size_t c = 0; c < classes; ++c) per_class[c].push_back(c < r.dice.size() ? r.dice[c] : NAN);
  }
  const bool markers = rows.size() <= 30;
  const Rgb blue = Rgb::hex(0x1f77b4), orange = Rgb::hex(0xff7f0e), grey = Rgb::hex(0x7f7f7f);

  const int w = 1200, h = 820, top = 36;
  Figure fig(w, h);
  draw_text(fig.cr(), w / 2.0, 25, title, 17, Rgb{0.1, 0.1, 0.1}, Align::kCenter, true);
  const double pw = w / 2.0, ph = (h - top) / 2.0;

  Axes a1 = axes("train loss and mean val Dice", "loss / Dice");
  a1.y_min = 0;
  draw_line_chart(fig.cr(), {0, top, pw, ph}, a1,
                  {{"train loss", epoch, loss, blue, false, 1.4, markers},
                   {"train loss, average of 5", epoch, moving_average(loss, kAverageWindow), blue, true, 2.2},
                   {"mean val Dice", epoch, dice, orange, false, 1.4, markers},
                   {"mean val Dice, average of 5", epoch, moving_average(dice, kAverageWindow), orange, true, 2.2}});

  Axes a2 = axes("val Dice per class", "Dice");
  a2.y_min = 0;
  a2.y_max = 1;
  std::vector<Series> s2;
  const bool named = classes == style.size();  // else the run's classes are not the style's
  for (size_t c = 1; c < classes; ++c) {
    s2.push_back({named ? style.names[c] : fmt::format("class {}", c), epoch, per_class[c],
                  named ? style.line_colors[c] : grey, false, 2, markers});
  }
  draw_line_chart(fig.cr(), {pw, top, pw, ph}, a2, s2);

  Axes a3 = axes("learning rate", "lr");
  a3.log_y = true;
  draw_line_chart(fig.cr(), {0, top + ph, pw, ph}, a3, {{"", epoch, lr, Rgb::hex(0x2ca02c), false, 2, markers}});

  Axes a4 = axes("epoch time and throughput", "seconds per epoch");
  a4.y2_label = "slices/s (all ranks)";
  a4.y_min = 0;
  a4.y2_min = 0;
  draw_line_chart(fig.cr(), {pw, top + ph, pw, ph}, a4,
                  {{"epoch time (s)", epoch, seconds, Rgb::hex(0x9467bd), false, 2, markers},
                   {"slices/s", epoch, rate, Rgb::hex(0x8c564b), false, 2, markers, true}});
  fig.save_png(png, "progress plot");
}

}  // namespace strata::viz
