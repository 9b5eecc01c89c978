// The pictures of a training run: TensorBoard events and progress.png (run_logger.h).
#include "strata/train/run_logger.h"

#include "strata/core/log.h"
#include "strata/viz/progress_plot.h"

#include <filesystem>

namespace fs = std::filesystem;

namespace strata::train {

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
      for (const auto& [tag, value] : val->scalars) tb_->scalar(tag, step, value);
      // Epochs 1, 1 + k, 1 + 2k, ... and the last: by epoch number, so that a resumed
      // run keeps the same ones.
      const int64_t epoch = trainer.epoch();
      const bool last = epoch == trainer.setup().train.epochs;
      if (options_.image_every > 0 && options_.images > 0 && ((epoch - 1) % options_.image_every == 0 || last)) {
        write_pictures(trainer);
      }
    }
  }
  if (tb_) tb_->flush();
  if (options_.progress_png) {
    const auto metrics = fs::path(options_.run_dir) / "metrics.jsonl";
    viz::write_progress_plot(viz::read_epoch_rows(metrics.string()),
                             (fs::path(options_.run_dir) / "progress.png").string(), options_.title,
                             options_.classes);
  }
}

void RunLogger::write_pictures(Trainer& trainer) {
  std::vector<Picture> pictures;
  {
    torch::NoGradGuard no_grad;
    trainer.model().eval();
    pictures = trainer.task().pictures(trainer.model(), trainer.epoch(), options_.images);
    trainer.model().train();
  }
  for (const auto& p : pictures) tb_->image(p.tag, trainer.step(), p.png, p.width, p.height, p.channels);
}

}  // namespace strata::train
