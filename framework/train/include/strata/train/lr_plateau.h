// LrPlateau: ReduceLROnPlateau on a validation metric, with state that checkpoints.
//
// libtorch has a ReduceLROnPlateauScheduler, but its state is private and cannot be
// saved or restored, which an exact `--resume` needs; this one keeps the same rule
// (PyTorch's: relative threshold, patience, cooldown, min_lr) in fields that are saved.
// Every rank feeds it the same (allreduced) metric, so every rank changes lr alike.
#pragma once

#include <torch/torch.h>

#include <string>

namespace strata::train {

struct PlateauOptions {
  bool maximize = true;     // true: higher metric is better (Dice); false: lower (loss)
  double factor = 0.5;      // lr *= factor on a plateau
  int patience = 2;         // epochs without improvement before reducing
  double threshold = 1e-4;  // relative improvement that counts as better
  int cooldown = 0;         // epochs to wait after a reduction before counting again
  double min_lr = 1e-6;     // lr never goes below this
};

class LrPlateau {
 public:
  LrPlateau(torch::optim::Optimizer& optimizer, PlateauOptions options);

  // Feeds one epoch's metric; returns true when it reduced the learning rate.
  bool step(double metric);
  double lr() const;
  double best() const { return best_; }
  int bad_epochs() const { return bad_epochs_; }

  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive);

 private:
  bool better(double metric) const;
  torch::optim::Optimizer& optimizer_;
  PlateauOptions options_;
  double best_;
  int bad_epochs_ = 0;
  int cooldown_left_ = 0;
};

// Sets the learning rate of every parameter group.
void set_lr(torch::optim::Optimizer& optimizer, double lr);

}  // namespace strata::train
