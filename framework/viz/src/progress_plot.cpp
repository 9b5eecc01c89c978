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

// The rows as one column per curve, epoch by epoch.
struct Columns {
  std::vector<double> epoch, loss, dice, lr, seconds, rate;
  std::vector<std::vector<double>> per_class;  // per class, background first: NaN where a row has none
  bool markers = false;                        // few epochs: a dot at each
};

Columns columns(const std::vector<EpochRow>& rows) {
  Columns c;
  size_t classes = 0;
  for (const auto& r : rows) classes = std::max(classes, r.dice.size());
  c.per_class.resize(classes);
  for (const auto& r : rows) {
    c.epoch.push_back(r.epoch);
    c.loss.push_back(r.train_loss);
    c.dice.push_back(r.mean_dice);
    c.lr.push_back(r.lr);
    c.seconds.push_back(r.epoch_s);
    c.rate.push_back(r.slices_per_s);
    for (size_t k = 0; k < classes; ++k) c.per_class[k].push_back(k < r.dice.size() ? r.dice[k] : NAN);
  }
  c.markers = rows.size() <= 30;
  return c;
}

void draw_loss_and_dice(cairo_t* cr, Rect area, const Columns& c) {
  const Rgb blue = Rgb::hex(0x1f77b4), orange = Rgb::hex(0xff7f0e);
  Axes a = axes("train loss and mean val Dice", "loss / Dice");
  a.y_min = 0;
  const auto loss_average = moving_average(c.loss, kAverageWindow), dice_average = moving_average(c.dice, kAverageWindow);
  draw_line_chart(cr, area, a,
                  {{"train loss", c.epoch, c.loss, blue, false, 1.4, c.markers},
                   {"train loss, average of 5", c.epoch, loss_average, blue, true, 2.2},
                   {"mean val Dice", c.epoch, c.dice, orange, false, 1.4, c.markers},
                   {"mean val Dice, average of 5", c.epoch, dice_average, orange, true, 2.2}});
}

// One line per class but the background, named and coloured by the style when the run's
// classes are the style's, "class 1", ... in grey otherwise.
void draw_class_dice(cairo_t* cr, Rect area, const Columns& c, const ClassStyle& style) {
  Axes a = axes("val Dice per class", "Dice");
  a.y_min = 0;
  a.y_max = 1;
  const size_t classes = c.per_class.size();
  const bool named = classes == style.size();
  std::vector<Series> series;
  for (size_t k = 1; k < classes; ++k) {
    series.push_back({named ? style.names[k] : fmt::format("class {}", k), c.epoch, c.per_class[k],
                      named ? style.line_colors[k] : Rgb::hex(0x7f7f7f), false, 2, c.markers});
  }
  draw_line_chart(cr, area, a, series);
}

void draw_speed(cairo_t* cr, Rect area, const Columns& c) {
  Axes a = axes("epoch time and throughput", "seconds per epoch");
  a.y2_label = "slices/s (all ranks)";
  a.y_min = 0;
  a.y2_min = 0;
  draw_line_chart(cr, area, a,
                  {{"epoch time (s)", c.epoch, c.seconds, Rgb::hex(0x9467bd), false, 2, c.markers},
                   {"slices/s", c.epoch, c.rate, Rgb::hex(0x8c564b), false, 2, c.markers, true}});
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
  if (style.size() > 0) style.check("progress plot");  // empty: every class line grey, as on a mismatch
  const Columns c = columns(rows);
  const int w = 1200, h = 820, top = 36;
  Figure fig(w, h);
  draw_text(fig.cr(), w / 2.0, 25, title, 17, Rgb{0.1, 0.1, 0.1}, Align::kCenter, true);
  const double pw = w / 2.0, ph = (h - top) / 2.0;
  draw_loss_and_dice(fig.cr(), {0, top, pw, ph}, c);
  draw_class_dice(fig.cr(), {pw, top, pw, ph}, c, style);
  Axes lr = axes("learning rate", "lr");
  lr.log_y = true;
  draw_line_chart(fig.cr(), {0, top + ph, pw, ph}, lr, {{"", c.epoch, c.lr, Rgb::hex(0x2ca02c), false, 2, c.markers}});
  draw_speed(fig.cr(), {pw, top + ph, pw, ph}, c);
  fig.save_png(png, "progress plot");
}

}  // namespace strata::viz
