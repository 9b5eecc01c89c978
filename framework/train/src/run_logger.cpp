// The pictures of a training run: TensorBoard events and progress.png (run_logger.h).
#include "strata/train/run_logger.h"

#include "strata/core/log.h"
#include "strata/train/amp.h"
#include "strata/viz/overlay.h"
#include "strata/viz/progress_plot.h"

#include <filesystem>

namespace fs = std::filesystem;

namespace strata::train {
namespace {

std::string class_tag(size_t c, size_t classes) {
  static const std::array<const char*, 4> kTags{"background", "necrotic", "edema", "enhancing"};
  return classes == 4 ? kTags[c] : fmt::format("class{}", c);
}

// Interim: the BraTS names and colours of the figures (as recipes/brats_recipe/figure_style.cpp
// has them), until the overlays move into the BraTS task and it hands its style in.
const viz::OverlayStyle& brats_figures() {
  using viz::Rgb;
  static const viz::OverlayStyle style{
      {"T1", "T1ce", "T2", "FLAIR"},
      3,
      {{"background", "necrotic core", "edema", "enhancing tumour"},
       {Rgb{0, 0, 0}, Rgb::hex(0xe8413c), Rgb::hex(0x3cc85a), Rgb::hex(0xffd21e)},
       {Rgb{0, 0, 0}, Rgb::hex(0xe8413c), Rgb::hex(0x3cc85a), Rgb::hex(0xd4a800)}}};
  return style;
}

}  // namespace

RunLogger::RunLogger(RunLoggerOptions options) : options_(std::move(options)) {
  if (options_.tensorboard) {
    tb_ = std::make_unique<viz::EventWriter>((fs::path(options_.run_dir) / "tb").string(), options_.resume_step);
  }
}

RunLogger::~RunLogger() {
  try {
    flush_steps();
  } catch (const std::exception& e) {
    core::warn("TensorBoard: {}", e.what());  // destructors log instead of throwing
  }
}

const std::string& RunLogger::event_file() const {
  static const std::string none;
  return tb_ ? tb_->path() : none;
}

void RunLogger::on_step(int64_t step, const torch::Tensor& loss, const torch::Tensor& loss_scale, double lr) {
  if (!tb_) return;
  // Copies on the device (the scale changes in place); no host synchronisation here.
  pending_.push_back({step, loss.detach().reshape({1}).to(torch::kFloat),
                      loss_scale.defined() ? loss_scale.detach().reshape({1}).to(torch::kFloat).clone()
                                           : torch::ones({1}, loss.options().dtype(torch::kFloat)),
                      lr});
  if (pending_.size() >= kStepFlush) flush_steps();
}

void RunLogger::flush_steps() {
  if (!tb_ || pending_.empty()) return;
  std::vector<torch::Tensor> losses, scales;
  for (const auto& p : pending_) {
    losses.push_back(p.loss);
    scales.push_back(p.scale);
  }
  auto values = torch::stack({torch::cat(losses), torch::cat(scales)}).cpu();  // the one synchronisation
  auto a = values.accessor<float, 2>();
  for (size_t i = 0; i < pending_.size(); ++i) {
    tb_->scalar("step/loss", pending_[i].step, a[0][i]);
    tb_->scalar("step/lr", pending_[i].step, pending_[i].lr);
    tb_->scalar("step/loss_scale", pending_[i].step, a[1][i]);
  }
  pending_.clear();
}

void RunLogger::on_epoch(const EpochStats& st, const std::optional<Validation>& val, Trainer& trainer) {
  flush_steps();
  if (tb_ && !st.preempted) {
    // The values of the epoch's metrics.jsonl line, at its step.
    const int64_t step = trainer.step();
    tb_->scalar("epoch/train_loss", step, st.train_loss);
    tb_->scalar("epoch/lr", step, st.lr);
    tb_->scalar("perf/slices_per_s", step, st.slices_per_s);
    tb_->scalar("perf/epoch_s", step, st.seconds);
    tb_->scalar("perf/data_wait", step, st.data_wait);
    tb_->scalar("perf/exposed_comm_s", step, st.exposed_comm_s);
    if (val) {
      for (size_t c = 0; c < val->dice.size(); ++c) {
        tb_->scalar("val/dice/" + class_tag(c, val->dice.size()), step, val->dice[c]);
        tb_->scalar("val/iou/" + class_tag(c, val->iou.size()), step, val->iou[c]);
      }
      tb_->scalar("val/mean_dice", step, val->mean_dice);
      tb_->scalar("val/mean_iou", step, val->mean_iou);
      // Epochs 1, 1 + k, 1 + 2k, ... and the last: by epoch number, so that a resumed
      // run keeps the same ones.
      const int64_t epoch = trainer.epoch();
      const bool last = epoch == trainer.setup().train.epochs;
      if (options_.image_every > 0 && options_.images > 0 && ((epoch - 1) % options_.image_every == 0 || last)) {
        write_overlays(trainer);
      }
    }
  }
  if (tb_) tb_->flush();
  if (options_.progress_png) {
    const auto metrics = fs::path(options_.run_dir) / "metrics.jsonl";
    viz::write_progress_plot(viz::read_epoch_rows(metrics.string()),
                             (fs::path(options_.run_dir) / "progress.png").string(), options_.title,
                             brats_figures().classes);
  }
}

std::vector<int64_t> RunLogger::overlay_slices(const Trainer& trainer) const {
  // The slice with the most tumour of each validation case, for the first `images` cases
  // that have tumour: fixed for the whole run, so the images show progress.
  const auto& store = trainer.store();
  const auto& val = store.split(trainer.setup().data.val_split);
  if (val.empty()) return {};
  auto labels = torch::empty({static_cast<int64_t>(val.size()), store.height(), store.width()}, torch::kUInt8);
  store.read_into(val, torch::Tensor(), labels);
  auto tumour = labels.ne(0).sum({1, 2}).contiguous();
  const auto* counts = tumour.data_ptr<int64_t>();
  std::map<int32_t, std::pair<int64_t, int64_t>> best;  // case -> (count, slice)
  for (size_t i = 0; i < val.size(); ++i) {
    auto& b = best[store.case_of(val[i])];
    if (counts[i] > b.first) b = {counts[i], val[i]};
  }
  std::vector<int64_t> out;
  for (const auto& [c, b] : best) {
    if (b.first > 0 && static_cast<int64_t>(out.size()) < options_.images) out.push_back(b.second);
  }
  return out;
}

void RunLogger::write_overlays(Trainer& trainer) {
  if (overlay_slices_.empty()) overlay_slices_ = overlay_slices(trainer);
  if (overlay_slices_.empty()) return;
  const auto& store = trainer.store();
  const int64_t n = static_cast<int64_t>(overlay_slices_.size()), h = store.height(), w = store.width();
  auto images = torch::empty({n, 4, h, w}, torch::kFloat);
  auto labels = torch::empty({n, h, w}, torch::kUInt8);
  store.read_into(overlay_slices_, images, labels);
  torch::Tensor pred;
  {
    torch::NoGradGuard no_grad;
    auto& model = trainer.model();
    model->eval();
    AutocastScope autocast(trainer.amp(), trainer.device());
    pred = model->forward(images.to(trainer.device())).argmax(1).to(torch::kUInt8).cpu().contiguous();
    model->train();
  }
  for (int64_t i = 0; i < n; ++i) {
    viz::OverlaySlice s;
    s.height = static_cast<int>(h);
    s.width = static_cast<int>(w);
    for (int64_t m = 0; m < images.size(1); ++m) {
      auto plane = images[i][m].contiguous();
      s.channels.emplace_back(plane.data_ptr<float>(), plane.data_ptr<float>() + h * w);
    }
    auto t = labels[i].contiguous();
    auto p = pred[i].contiguous();
    s.truth.assign(t.data_ptr<uint8_t>(), t.data_ptr<uint8_t>() + h * w);
    s.pred.assign(p.data_ptr<uint8_t>(), p.data_ptr<uint8_t>() + h * w);
    const std::string title = fmt::format("{} at epoch {}", store.describe_slice(overlay_slices_[i]), trainer.epoch());
    auto fig = viz::draw_overlay(s, brats_figures(), title, static_cast<int>(std::clamp<int64_t>(2 * h, 128, 200)));
    tb_->image(fmt::format("val/overlay/{}", i), trainer.step(), fig->png(), fig->width(), fig->height(), 3);
  }
}

}  // namespace strata::train
