// ReduceLROnPlateau with checkpointable state (see lr_plateau.h).
#include "strata/train/lr_plateau.h"

#include "strata/core/error.h"
#include "strata/core/log.h"

#include <algorithm>
#include <limits>

namespace strata::train {

void set_lr(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

LrPlateau::LrPlateau(torch::optim::Optimizer& optimizer, PlateauOptions options)
    : optimizer_(optimizer), options_(options) {
  STRATA_CHECK_AS(ConfigError, options.factor > 0 && options.factor < 1, "sched.factor must be in (0, 1), got {}",
                  options.factor);
  STRATA_CHECK_AS(ConfigError, options.patience >= 0, "sched.patience must be >= 0, got {}", options.patience);
  best_ = options.maximize ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
}

bool LrPlateau::better(double metric) const {
  // PyTorch's "rel" threshold mode.
  return options_.maximize ? metric > best_ * (1 + options_.threshold)
                           : metric < best_ * (1 - options_.threshold);
}

double LrPlateau::lr() const { return optimizer_.param_groups().front().options().get_lr(); }

bool LrPlateau::step(double metric) {
  if (better(metric)) {
    best_ = metric;
    bad_epochs_ = 0;
  } else {
    ++bad_epochs_;
  }
  if (cooldown_left_ > 0) {
    --cooldown_left_;
    bad_epochs_ = 0;
  }
  if (bad_epochs_ <= options_.patience) return false;
  double old_lr = lr();
  double new_lr = std::max(old_lr * options_.factor, options_.min_lr);
  cooldown_left_ = options_.cooldown;
  bad_epochs_ = 0;
  if (old_lr - new_lr <= 1e-12) return false;  // already at min_lr
  set_lr(optimizer_, new_lr);
  core::log0("lr plateau: no improvement over {:.4f} for {} epochs, lr {:.3g} -> {:.3g}", best_,
             options_.patience + 1, old_lr, new_lr);
  return true;
}

void LrPlateau::save(torch::serialize::OutputArchive& archive) const {
  archive.write("sched.best", torch::tensor({best_}, torch::kDouble));
  archive.write("sched.counters", torch::tensor({static_cast<int64_t>(bad_epochs_), static_cast<int64_t>(cooldown_left_)},
                                                torch::kLong));
  archive.write("sched.lr", torch::tensor({lr()}, torch::kDouble));
}

void LrPlateau::load(torch::serialize::InputArchive& archive) {
  torch::Tensor best, counters, lr;
  archive.read("sched.best", best);
  archive.read("sched.counters", counters);
  archive.read("sched.lr", lr);
  best_ = best.item<double>();
  bad_epochs_ = static_cast<int>(counters[0].item<int64_t>());
  cooldown_left_ = static_cast<int>(counters[1].item<int64_t>());
  set_lr(optimizer_, lr.item<double>());
}

}  // namespace strata::train
