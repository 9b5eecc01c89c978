// framework/viz: TensorBoard framing and files, chart helpers, metrics.jsonl rows, and the
// pixels of the overlays and progress.png (decoded back from their PNG with cairo), drawn
// with a style of no dataset in particular.
#include "strata/viz/chart.h"
#include "strata/viz/event_writer.h"
#include "strata/viz/overlay.h"
#include "strata/viz/progress_plot.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace strata::viz {
namespace {

class VizTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / fmt::format("strata_viz_test_{}", ::testing::UnitTest::GetInstance()->random_seed());
    dir_ /= ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  static std::vector<std::string> event_files(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
    return out;
  }
  fs::path dir_;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void spit(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

TEST(Crc32c, MatchesTheStandardCheckValues) {
  // CRC-32C (Castagnoli) of "123456789" is 0xE3069283; of 32 zero bytes 0x8A9136AA (RFC 3720).
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  const uint32_t c = crc32c("123456789");
  EXPECT_EQ(masked_crc32c("123456789"), ((c >> 15) | (c << 17)) + 0xa282ead8u);
}

TEST(FrameRecord, LayoutIsLengthCrcPayloadCrc) {
  const std::string r = frame_record("abc");
  ASSERT_EQ(r.size(), 8u + 4 + 3 + 4);
  EXPECT_EQ(static_cast<uint8_t>(r[0]), 3);
  for (int i = 1; i < 8; ++i) EXPECT_EQ(r[i], '\0');
  EXPECT_EQ(r.substr(12, 3), "abc");
}

TEST_F(VizTest, RecordsRoundTripAndCorruptionIsNamed) {
  spit(file("ev"), frame_record("first") + frame_record(std::string(300, 'x')) + frame_record(""));
  auto records = read_records(file("ev"));
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0], "first");
  EXPECT_EQ(records[1], std::string(300, 'x'));
  EXPECT_EQ(records[2], "");

  std::string bytes = slurp(file("ev"));
  bytes[12 + 5 + 4 + 12 + 100] ^= 1;  // a byte of the second payload
  spit(file("bad"), bytes);
  EXPECT_NE(test::error_of([&] { read_records(file("bad")); }).find("data checksum of the record at byte 21"),
            std::string::npos);

  spit(file("cut"), slurp(file("ev")).substr(0, 21 + 100));  // ends inside the second record
  EXPECT_NE(test::error_of([&] { read_records(file("cut")); }).find("cut short"), std::string::npos);
  EXPECT_EQ(read_records(file("cut"), /*allow_truncated_tail=*/true).size(), 1u);
}

TEST_F(VizTest, WriterWritesVersionScalarsAndImages) {
  std::string path;
  {
    EventWriter w(file("tb"));
    path = w.path();
    w.scalar("loss", 1, 0.5);
    w.scalar("loss", 2, 0.25);
    w.image("img", 2, "PNGBYTES", 4, 3, 3);
  }
  EXPECT_EQ(fs::path(path).filename().string().rfind("events.out.tfevents.", 0), 0u);
  auto ev = read_events(path);
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[0].kind, "file_version");
  EXPECT_EQ(ev[1].kind, "scalar");
  EXPECT_EQ(ev[1].tag, "loss");
  EXPECT_EQ(ev[1].step, 1);
  EXPECT_DOUBLE_EQ(ev[2].value, 0.25);
  EXPECT_EQ(ev[3].kind, "image");
  EXPECT_EQ(ev[3].tag, "img");
  EXPECT_GT(ev[1].wall_time, 1.7e9);
}

TEST_F(VizTest, ResumeTrimsLaterStepsAndLogsAStart) {
  const std::string tb = file("tb");
  {
    EventWriter w(tb);
    for (int s = 1; s <= 10; ++s) w.scalar("loss", s, s);
  }
  // A killed writer leaves half a record at the end: it goes with the trim.
  const std::string first = event_files(tb).front();
  spit(first, slurp(first) + frame_record("partial").substr(0, 9));
  {
    EventWriter w(tb, /*resume_step=*/6);
    for (int s = 7; s <= 8; ++s) w.scalar("loss", s, 100 + s);
  }
  auto files = event_files(tb);
  ASSERT_EQ(files.size(), 2u);
  std::vector<int64_t> steps;
  for (const auto& f : files) {
    for (const auto& e : read_events(f)) {  // no truncated tail is left: this would throw
      if (e.kind == "scalar") steps.push_back(e.step);
    }
  }
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  auto resumed = read_events(files.back());
  ASSERT_GE(resumed.size(), 2u);
  EXPECT_EQ(resumed[1].kind, "session_start");
  EXPECT_EQ(resumed[1].step, 6);
  EXPECT_EQ(trim_events_after(tb, 100), 0);  // nothing after step 100: files untouched
  EXPECT_EQ(trim_events_after(tb, 7), 1);
}

TEST(Chart, NiceTicksAreRoundAndCoverTheRange) {
  EXPECT_EQ(nice_ticks(0, 1, 5), (std::vector<double>{0, 0.2, 0.4, 0.6, 0.8, 1.0}));
  auto t = nice_ticks(3, 97, 5);
  ASSERT_GE(t.size(), 4u);
  EXPECT_EQ(t.front(), 20);
  EXPECT_EQ(t[1] - t[0], 20);
  EXPECT_TRUE(nice_ticks(1, 1, 5).empty());
}

TEST(Chart, MovingAverageSkipsNaN) {
  auto m = moving_average({1, 3, NAN, 5, 7}, 2);
  EXPECT_DOUBLE_EQ(m[0], 1);
  EXPECT_DOUBLE_EQ(m[1], 2);
  EXPECT_DOUBLE_EQ(m[2], 3);
  EXPECT_DOUBLE_EQ(m[3], 5);
  EXPECT_DOUBLE_EQ(m[4], 6);
}

TEST_F(VizTest, EpochRowsSkipPartialLinesAndLaterLinesWin) {
  spit(file("metrics.jsonl"),
       R"({"epoch":1,"step":5,"train_loss":0.9,"lr":0.01,"val":{"dice":[1,0.1,0.2,0.3],"mean_dice":0.2}})"
       "\n"
       R"({"epoch":2,"step":7,"train_loss":0.8,"partial":true})"
       "\n"
       R"({"epoch":2,"step":10,"train_loss":0.7,"lr":0.01})"
       "\n\n"
       R"({"epoch":2,"step":10,"train_loss":0.6,"lr":0.005,"slices_per_s":12.5})"
       "\n");
  auto rows = read_epoch_rows(file("metrics.jsonl"));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].epoch, 1);
  EXPECT_DOUBLE_EQ(rows[0].mean_dice, 0.2);
  ASSERT_EQ(rows[0].dice.size(), 4u);
  EXPECT_DOUBLE_EQ(rows[1].train_loss, 0.6);
  EXPECT_DOUBLE_EQ(rows[1].slices_per_s, 12.5);
  EXPECT_TRUE(std::isnan(rows[1].mean_dice));

  spit(file("bad.jsonl"), "{\"epoch\":1}\n{not json\n");
  EXPECT_NE(test::error_of([&] { read_epoch_rows(file("bad.jsonl")); }).find("bad.jsonl line 2 is not JSON"),
            std::string::npos);
}

// The pixels of a PNG, decoded by cairo.
struct Decoded {
  int width = 0, height = 0;
  std::vector<uint32_t> pixels;  // 0x00RRGGBB
};

Decoded decode_png(const std::string& png) {
  struct Reader {
    const std::string* bytes;
    size_t at = 0;
  } reader{&png};
  auto read = [](void* closure, unsigned char* data, unsigned int length) -> cairo_status_t {
    auto* r = static_cast<Reader*>(closure);
    if (r->at + length > r->bytes->size()) return CAIRO_STATUS_READ_ERROR;
    std::memcpy(data, r->bytes->data() + r->at, length);
    r->at += length;
    return CAIRO_STATUS_SUCCESS;
  };
  cairo_surface_t* s = cairo_image_surface_create_from_png_stream(read, &reader);
  Decoded d;
  if (cairo_surface_status(s) == CAIRO_STATUS_SUCCESS) {
    d.width = cairo_image_surface_get_width(s);
    d.height = cairo_image_surface_get_height(s);
    const int stride = cairo_image_surface_get_stride(s);
    for (int y = 0; y < d.height; ++y) {
      const auto* row = reinterpret_cast<const uint32_t*>(cairo_image_surface_get_data(s) + y * stride);
      for (int x = 0; x < d.width; ++x) d.pixels.push_back(row[x] & 0xffffff);
    }
  }
  cairo_surface_destroy(s);
  return d;
}

uint32_t packed(Rgb c) {
  auto b = [](double v) { return static_cast<uint32_t>(std::lround(v * 255)); };
  return (b(c.r) << 16) | (b(c.g) << 8) | b(c.b);
}

// A task of no dataset in particular: three classes besides the background, four channels.
ClassStyle test_classes() {
  return {{"background", "alpha", "beta", "gamma"},
          {Rgb{0, 0, 0}, Rgb::hex(0xe8413c), Rgb::hex(0x3cc85a), Rgb::hex(0xffd21e)},
          {Rgb{0, 0, 0}, Rgb::hex(0xaa1100), Rgb::hex(0x00aa22), Rgb::hex(0x2200aa)}};
}
OverlayStyle test_style() { return {{"a", "b", "c", "d"}, 3, test_classes()}; }

// Whether any pixel of the rectangle [x0, x1) x [y0, y1) of a decoded image is `color`.
bool has_color(const Decoded& d, int x0, int x1, int y0, int y1, Rgb color) {
  for (int y = y0; y < y1; ++y) {
    for (int x = x0; x < x1; ++x) {
      if (d.pixels[static_cast<size_t>(y * d.width + x)] == packed(color)) return true;
    }
  }
  return false;
}

TEST(Overlay, ErrorPanelColoursEachKindOfError) {
  // 100x100 slice (cell 100: drawn 1:1): truth necrotic in the left block, prediction
  // edema over part of it (wrong class) and over background (false positive); the rest
  // of the truth block is missed (false negative).
  OverlaySlice s;
  s.height = s.width = 100;
  s.channels.assign(4, std::vector<float>(100 * 100, 1.0f));
  s.truth.assign(100 * 100, 0);
  s.pred.assign(100 * 100, 0);
  auto at = [](int y, int x) { return static_cast<size_t>(y * 100 + x); };
  for (int y = 10; y < 40; ++y) {
    for (int x = 10; x < 40; ++x) s.truth[at(y, x)] = 1;
    for (int x = 30; x < 60; ++x) s.pred[at(y, x)] = 2;
  }
  auto fig = draw_overlay(s, test_style(), "test", 100);
  Decoded d = decode_png(fig->png());
  ASSERT_EQ(d.width, fig->width());
  ASSERT_EQ(d.height, fig->height());
  // The errors panel: third column of the second row (gap 10, title 30, label 20).
  const int px = 10 + 2 * (100 + 10), py = 30 + 20 + 100 + 10 + 20;
  auto pixel = [&](int y, int x) { return d.pixels[static_cast<size_t>((py + y) * d.width + px + x)]; };
  EXPECT_EQ(pixel(20, 15), packed(error_colors().false_negative));
  EXPECT_EQ(pixel(20, 35), packed(error_colors().wrong_class));
  EXPECT_EQ(pixel(20, 50), packed(error_colors().false_positive));
  EXPECT_NE(pixel(80, 80), packed(error_colors().false_positive));  // correct background: grey
  // The ground truth panel shows the necrotic colour over the image in the truth block only.
  const int gx = 10;
  auto truth_pixel = [&](int y, int x) { return d.pixels[static_cast<size_t>((py + y) * d.width + gx + x)]; };
  EXPECT_NE(truth_pixel(20, 15), truth_pixel(80, 80));
  EXPECT_EQ(truth_pixel(20, 15), truth_pixel(30, 25));
}

TEST(Overlay, MostForegroundSliceAndSizeChecks) {
  std::vector<uint8_t> labels(4 * 9, 0);
  labels[9 + 1] = 2;
  labels[2 * 9 + 3] = labels[2 * 9 + 4] = 1;
  EXPECT_EQ(slice_with_most_foreground(labels, 9), 2);
  EXPECT_EQ(slice_with_most_foreground(std::vector<uint8_t>(18, 0), 9), -1);
  OverlaySlice s;
  s.height = s.width = 4;
  EXPECT_NE(test::error_of([&] { draw_overlay(s, test_style(), "empty", 64); }).find("overlay 'empty'"),
            std::string::npos);
}

// A slice of `channels` images (channel c holds the value c + 1 everywhere) with class 1
// in its top-left quarter and labels as given elsewhere.
OverlaySlice small_slice(int channels) {
  OverlaySlice s;
  s.height = s.width = 8;
  for (int c = 0; c < channels; ++c) s.channels.emplace_back(64, static_cast<float>(c + 1));
  s.truth.assign(64, 0);
  for (int y = 0; y < 4; ++y) {
    for (int x = 0; x < 4; ++x) s.truth[static_cast<size_t>(y * 8 + x)] = 1;
  }
  s.pred = s.truth;
  return s;
}

TEST(Overlay, DrawsTheChannelsAndClassesOfItsStyle) {
  // Two channels and two classes: the top row holds two images, the figure is as wide as
  // the second row (three panels and the legend) needs, and class 1 has the style's colour.
  OverlayStyle two{{"first", "second"}, 1, {{"none", "thing"}, {Rgb{}, Rgb::hex(0x0000ff)}, {Rgb{}, Rgb{}}}};
  const int cell = 64, gap = 10;
  auto fig = draw_overlay(small_slice(2), two, "two", cell);
  EXPECT_EQ(fig->width(), gap + 3 * (cell + gap) + 170);
  Decoded d = decode_png(fig->png());
  const int row2 = 30 + 20 + cell + gap + 20;  // title, label, first row, label
  // Blue over the grey of the truth panel: blended, so the pure blue is only in the legend.
  EXPECT_FALSE(has_color(d, gap, gap + cell, row2, row2 + cell, Rgb::hex(0x0000ff)));
  EXPECT_TRUE(has_color(d, gap + 3 * (cell + gap), d.width, row2 - 20, d.height, Rgb::hex(0x0000ff)));
  // Six channels: the top row sets the width.
  OverlayStyle six{{"1", "2", "3", "4", "5", "6"}, 5, two.classes};
  EXPECT_EQ(draw_overlay(small_slice(6), six, "six", cell)->width(), gap + 6 * (cell + gap));
}

TEST(Overlay, RefusesASliceThatDoesNotMatchItsStyle) {
  const OverlayStyle style = test_style();
  auto error = [&](const OverlaySlice& s, const OverlayStyle& st) {
    return test::error_of([&] { draw_overlay(s, st, "bad", 64); });
  };
  EXPECT_NE(error(small_slice(3), style).find("overlay 'bad': 3 image channels for a style of 4"), std::string::npos);
  OverlaySlice labelled = small_slice(4);
  labelled.pred[63] = 4;  // past the style's classes: no colour to draw it with
  EXPECT_NE(error(labelled, style).find("overlay 'bad': label 4 in a slice of 4 classes"), std::string::npos);
  OverlayStyle beyond = style;
  beyond.label_channel = 4;
  EXPECT_NE(error(small_slice(4), beyond).find("label channel 4 of a style of 4 channels"), std::string::npos);
  OverlayStyle uncoloured = style;
  uncoloured.classes.colors.pop_back();
  EXPECT_NE(error(small_slice(4), uncoloured).find("overlay 'bad': 4 class names, 3 colours and 4 line colours"),
            std::string::npos);
}

TEST_F(VizTest, ProgressPlotIsAPngOfFourPanels) {
  std::vector<EpochRow> rows;
  for (int e = 1; e <= 12; ++e) {
    EpochRow r;
    r.epoch = e;
    r.train_loss = 1.0 / e;
    r.lr = e < 6 ? 1e-3 : 5e-4;
    r.epoch_s = 10 + e % 3;
    r.slices_per_s = 300 - e;
    r.mean_dice = 0.5 + 0.03 * e;
    r.dice = {0.99, 0.4 + 0.02 * e, 0.5 + 0.03 * e, 0.6 + 0.01 * e};
    rows.push_back(r);
  }
  write_progress_plot(rows, file("progress.png"), "test run", test_classes());
  Decoded d = decode_png(slurp(file("progress.png")));
  EXPECT_EQ(d.width, 1200);
  EXPECT_EQ(d.height, 820);
  // The per-class panel (top right) holds each class's line colour somewhere: its line was drawn.
  for (int c = 1; c <= 3; ++c) EXPECT_TRUE(has_color(d, 600, 1200, 40, 420, test_classes().line_colors[c])) << c;
  // Rows of another number of classes than the style's: "class 1", ... in grey.
  for (auto& r : rows) r.dice.resize(3);
  write_progress_plot(rows, file("other.png"), "other classes", test_classes());
  Decoded other = decode_png(slurp(file("other.png")));
  EXPECT_FALSE(has_color(other, 600, 1200, 40, 420, test_classes().line_colors[1]));
  EXPECT_TRUE(has_color(other, 600, 1200, 40, 420, Rgb::hex(0x7f7f7f)));
  write_progress_plot({}, file("empty.png"), "no epochs", test_classes());  // an empty run still draws its frame
  EXPECT_EQ(decode_png(slurp(file("empty.png"))).width, 1200);
  // A task that names no classes (an empty style) gets the grey lines too.
  write_progress_plot(rows, file("unnamed.png"), "unnamed classes", ClassStyle{});
  EXPECT_TRUE(has_color(decode_png(slurp(file("unnamed.png"))), 600, 1200, 40, 420, Rgb::hex(0x7f7f7f)));
  ClassStyle broken = test_classes();
  broken.colors.pop_back();
  EXPECT_NE(test::error_of([&] { write_progress_plot(rows, file("x.png"), "x", broken); }).find("progress plot: "),
            std::string::npos);
  EXPECT_FALSE(fs::exists(file("x.png")));
}

}  // namespace
}  // namespace strata::viz
