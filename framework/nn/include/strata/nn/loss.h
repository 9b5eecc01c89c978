// Segmentation losses on logits [B, C, H, W] or [B, C, D, H, W] and integer labels [B, H, W] or [B, D, H, W], built by
// name from the `loss` config section (make_loss). A recipe, task or test adds its own
// type with register_loss; the built-in types are registered the same way.
//
// Built-in types (loss.type):
// - multi_dice: soft Dice per class from the softmax, with sums over the whole batch
//   (every pixel of every slice, as the reference), then 1 - Dice averaged over classes
//   with weights w:  loss = sum_c w_c (1 - D_c) / sum_c w_c,
//   D_c = (2 sum(p_c y_c) + smooth) / (sum(p_c) + sum(y_c) + smooth).
//   Default weights: 1 for every class.
// - weighted_dice: multi_dice whose default weights are [0.1, 4, 1, 1] (background,
//   necrotic core, edema, enhancing tumour), for the necrotic fine-tune.
// - cross_entropy: mean pixel cross-entropy; loss.weights, when given, are class
//   weights (PyTorch's weighted mean).
// Any type adds ce_weight * (unweighted mean cross-entropy) when ce_weight > 0.
//
// Every type is a function of sums over the batch's pixels (Dice: per-class
// intersections and denominators; cross-entropy: its sum and the pixel count), so a
// loss splits into sums() and value(): loss = value(sums(logits, labels)), and sums
// add up over slices. loss.reduce: global adds them over ranks (and micro-batches)
// before value(), which makes N ranks x batch B the loss of one batch of N*B slices
// (train/grad_step.h); local keeps each rank's own batch.
//
// Contract: a loss is computed in float32 whatever the logits' dtype (float64 logits:
// in float64, for exactness tests), with autocast switched off inside: under bf16/fp16
// autocast the softmax and sums over 10^6 pixels need float32's range and precision.
// It returns a float32 scalar on the logits' device that backpropagates to the logits
// (in their dtype). Shapes and dtypes are
// checked on every call (DataError naming them). Label values are checked to lie in
// [0, C) when the labels are on the CPU; on a GPU that check would cost a device
// synchronisation per step, so there the data layer is trusted (it validates labels
// when packing), and a label outside [0, C) counts as no class in the Dice.
// A Loss is not thread-safe (it caches its weights on the last device used).
#pragma once

#include "strata/core/config.h"

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace strata::nn {

// The loss types make_loss knows: the built-ins in the order the docs list them, then
// the registered ones in registration order.
std::vector<std::string> loss_types();

// The `loss` section of a recipe.
struct LossConfig {
  std::string type = "multi_dice";  // multi_dice | weighted_dice | cross_entropy
  std::vector<double> weights;      // per-class weights, one per class; empty: the type's default
  double smooth = 1e-5;             // added to numerator and denominator of each class's Dice
  double ce_weight = 0.0;           // weight of an added cross-entropy term (0: none)
  std::string reduce = "global";    // global: sums over every rank's (and micro-batch's) slices | local: each rank's

  template <class V>
  void visit(V& v) {
    v("type", type, "multi_dice | weighted_dice | cross_entropy", core::one_of(loss_types()));
    v("weights", weights, "per-class weights, one per class; empty: the type's default",
      core::each(core::at_least(0.0)));
    v("smooth", smooth, "added to numerator and denominator of each class's Dice", core::at_least(0.0));
    v("ce_weight", ce_weight, "weight of an added cross-entropy term (0: none)", core::at_least(0.0));
    v("reduce", reduce,
      "global: the loss of the whole global batch (sums over ranks and micro-batches, one small allreduce per step) "
      "| local: each rank's batch, gradients averaged",
      core::one_of({"global", "local"}));
  }
  // Cross-field checks: weights not all zero. (Their count is checked against the
  // model's classes by make_loss, which knows it.)
  void validate() const;
};

class Loss {
 public:
  virtual ~Loss() = default;
  // logits [B, C, spatial...] (any floating dtype, any memory format), target int64 [B, spatial...]
  // with values in [0, C). Returns a float32 scalar (see the contract above):
  // value(sums(logits, target)).
  torch::Tensor operator()(const torch::Tensor& logits, const torch::Tensor& target) {
    return value(sums(logits, target));
  }
  // The sums the loss is a function of, over every pixel of the batch: a 1-D float32
  // (float64 for float64 logits) tensor that backpropagates to the logits. Sums of
  // several batches (added elementwise, over micro-batches or ranks) give the loss of
  // their concatenation. Checks its inputs like operator().
  virtual torch::Tensor sums(const torch::Tensor& logits, const torch::Tensor& target) = 0;
  // The loss of the slices whose sums() add up to `sums` (a scalar, differentiable).
  virtual torch::Tensor value(const torch::Tensor& sums) = 0;
  // The resolved loss, for the start-up log: "multi_dice(weights [1, 1, 1, 1], smooth 1e-05)".
  virtual std::string describe() const = 0;
};

// Builds a loss of `config` for a model with `classes` outputs; a ConfigError for
// settings it cannot take (say, loss.weights not one per class).
using LossFactory = std::function<std::unique_ptr<Loss>(const LossConfig& config, int64_t classes)>;

// Adds loss type `name` (what loss.type names, `description` one line for people).
// Register before the config is read (at static initialisation, or in main before
// parsing): LossConfig's check of loss.type takes the names registered by then. A name
// registered twice, or an empty name or factory, is an InternalError. Thread-safe.
void register_loss(const std::string& name, const std::string& description, LossFactory factory);
// The description `name` was registered with; a ConfigError for an unknown name.
std::string loss_description(const std::string& name);

// Builds the loss of `config` for a model with `num_classes` outputs. ConfigError for
// an unknown loss.type (listing the registered ones) and when loss.weights does not
// have num_classes entries (or weighted_dice's default weights do not fit num_classes).
std::unique_ptr<Loss> make_loss(const LossConfig& config, int64_t num_classes);

// The default weights of weighted_dice: [0.1, 4, 1, 1].
const std::vector<double>& necrotic_weights();

// Soft Dice per class, float32 [C], from logits and labels (the sums of multi_dice;
// exposed for tests and logging). Same checks and float32 contract as a Loss.
torch::Tensor soft_dice_per_class(const torch::Tensor& logits, const torch::Tensor& target, double smooth);

}  // namespace strata::nn
