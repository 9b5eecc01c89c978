// Dice and cross-entropy losses and their factory (see loss.h).
#include "strata/nn/loss.h"

#include "strata/core/error.h"

#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/nn/functional/loss.h>
#include <torch/torch.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <mutex>
#include <numeric>

namespace strata::nn {

namespace F = torch::nn::functional;

void LossConfig::validate() const {
  STRATA_CHECK_AS(ConfigError, reduce == "global" || reduce == "local", "'loss.reduce' = '{}': must be global or local",
                  reduce);
  bool any_positive = weights.empty();
  for (double w : weights) any_positive = any_positive || w > 0;
  STRATA_CHECK_AS(ConfigError, any_positive, "'loss.weights' = {}: at least one weight must be > 0", weights);
}

const std::vector<double>& necrotic_weights() {
  static const std::vector<double> weights{0.1, 4.0, 1.0, 1.0};
  return weights;
}

namespace {

void check_inputs(const torch::Tensor& logits, const torch::Tensor& target) {
  // [B, C, spatial...] logits against [B, spatial...] labels: slices (H, W) or volumes (D, H, W).
  STRATA_CHECK_AS(DataError, (logits.dim() == 4 || logits.dim() == 5) && at::isFloatingType(logits.scalar_type()),
                  "loss: logits of shape {} and dtype {}: expected a floating [B, C, H, W] or [B, C, D, H, W] tensor",
                  logits.sizes(), c10::toString(logits.scalar_type()));
  std::vector<int64_t> expected = logits.sizes().vec();
  expected.erase(expected.begin() + 1);
  STRATA_CHECK_AS(DataError, target.scalar_type() == torch::kLong && target.sizes().vec() == expected,
                  "loss: labels of shape {} and dtype {} do not match logits {}: expected int64 {}", target.sizes(),
                  c10::toString(target.scalar_type()), logits.sizes(), expected);
  STRATA_CHECK_AS(DataError, target.device() == logits.device(), "loss: labels on {} but logits on {}",
                  target.device().str(), logits.device().str());
  const int64_t classes = logits.size(1);
  if (target.is_cpu() && target.numel() > 0) {
    auto [lo, hi] = torch::aminmax(target);
    int64_t min = lo.item<int64_t>(), max = hi.item<int64_t>();
    STRATA_CHECK_AS(DataError, min >= 0 && max < classes,
                    "loss: labels must lie in [0, {}) for {} classes, found values from {} to {}", classes, classes,
                    min, max);
  }
}

// Autocast off for the scope: the loss's float32 ops must stay float32 on every
// device's autocast policy, whatever the ops' lists say.
class NoAutocast {
 public:
  NoAutocast() : guard_(c10::autocast_dispatch_keyset) {}

 private:
  c10::impl::ExcludeDispatchKeyGuard guard_;
};

// float64 logits stay float64 (exactness tests); everything else is computed in float32.
torch::ScalarType compute_dtype(const torch::Tensor& logits) {
  return logits.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
}

// Per-class intersections sum(p_c y_c) and denominators sum(p_c) + sum(y_c), as one
// [2C] tensor, from inputs already checked.
torch::Tensor dice_sums(const torch::Tensor& logits, const torch::Tensor& target) {
  const int64_t classes = logits.size(1);
  torch::Tensor p = torch::softmax(logits.to(compute_dtype(logits)), 1);
  // One-hot by comparison rather than scatter: no index can go out of bounds.
  std::vector<int64_t> class_shape(static_cast<size_t>(logits.dim()), 1);
  class_shape[1] = classes;
  torch::Tensor onehot =
      (target.unsqueeze(1) == torch::arange(classes, target.options()).view(class_shape)).to(p.scalar_type());
  std::vector<int64_t> dims{0};  // every dimension but the classes'
  for (int64_t d = 2; d < logits.dim(); ++d) dims.push_back(d);
  torch::Tensor intersection = (p * onehot).sum(dims);
  torch::Tensor denominator = p.sum(dims) + onehot.sum(dims);
  return torch::cat({intersection, denominator});
}

// Dice per class from dice_sums() (of one batch or added over several).
torch::Tensor dice_of_sums(const torch::Tensor& sums, int64_t classes, double smooth) {
  return (2 * sums.narrow(0, 0, classes) + smooth) / (sums.narrow(0, classes, classes) + smooth);
}

// Dice per class from inputs already checked.
torch::Tensor dice_unchecked(const torch::Tensor& logits, const torch::Tensor& target, double smooth) {
  return dice_of_sums(dice_sums(logits, target), logits.size(1), smooth);
}

// [sum of the pixels' cross-entropy, pixel count], in the compute dtype.
torch::Tensor ce_sums(const torch::Tensor& logits, const torch::Tensor& target) {
  torch::Tensor x = logits.to(compute_dtype(logits));
  torch::Tensor sum = F::cross_entropy(x, target, F::CrossEntropyFuncOptions().reduction(torch::kSum));
  return torch::stack({sum, torch::full({}, static_cast<double>(target.numel()), x.options())});
}

// weights / sum(weights), float32, cached on the last device asked for.
class Weights {
 public:
  explicit Weights(const std::vector<double>& w) {
    double sum = std::accumulate(w.begin(), w.end(), 0.0);
    std::vector<float> normalised;
    for (double x : w) normalised.push_back(static_cast<float>(x / sum));
    host_ = torch::tensor(normalised, torch::kFloat);
    on_device_ = host_;
  }
  const torch::Tensor& on(const torch::Device& device, torch::ScalarType dtype = torch::kFloat) {
    if (on_device_.device() != device || on_device_.scalar_type() != dtype) on_device_ = host_.to(device, dtype);
    return on_device_;
  }

 private:
  torch::Tensor host_, on_device_;
};

std::string ce_suffix(double ce_weight) {
  return ce_weight > 0 ? fmt::format(" + {} * cross_entropy", ce_weight) : std::string();
}

class DiceLoss final : public Loss {
 public:
  DiceLoss(std::string name, std::vector<double> weights, double smooth, double ce_weight)
      : name_(std::move(name)), raw_weights_(weights), weights_(weights), smooth_(smooth), ce_weight_(ce_weight) {}

  // [intersection (C), denominator (C), cross-entropy sum, pixels]; the last two are 0
  // without a cross-entropy term.
  torch::Tensor sums(const torch::Tensor& logits, const torch::Tensor& target) override {
    check_classes(logits);
    check_inputs(logits, target);
    NoAutocast no_autocast;
    torch::Tensor dice = dice_sums(logits, target);
    torch::Tensor ce = ce_weight_ > 0 ? ce_sums(logits, target) : torch::zeros({2}, dice.options());
    return torch::cat({dice, ce});
  }

  torch::Tensor value(const torch::Tensor& sums) override {
    const int64_t classes = static_cast<int64_t>(raw_weights_.size());
    STRATA_CHECK(sums.dim() == 1 && sums.size(0) == 2 * classes + 2, "loss {}: sums of shape {}, expected [{}]", name_,
                 sums.sizes(), 2 * classes + 2);
    NoAutocast no_autocast;
    torch::Tensor dice = dice_of_sums(sums, classes, smooth_);
    torch::Tensor loss = ((1 - dice) * weights_.on(sums.device(), sums.scalar_type())).sum();
    if (ce_weight_ > 0) loss = loss + ce_weight_ * (sums[2 * classes] / sums[2 * classes + 1]);
    return loss;
  }

  std::string describe() const override {
    return fmt::format("{}(weights {}, smooth {}){}", name_, raw_weights_, smooth_, ce_suffix(ce_weight_));
  }

 private:
  void check_classes(const torch::Tensor& logits) const {
    STRATA_CHECK_AS(DataError, logits.dim() < 2 || logits.size(1) == static_cast<int64_t>(raw_weights_.size()),
                    "loss {}: logits have {} classes, the loss was built for {}", name_, logits.size(1),
                    raw_weights_.size());
  }

  std::string name_;
  std::vector<double> raw_weights_;
  Weights weights_;
  double smooth_, ce_weight_;
};

class CrossEntropyLoss final : public Loss {
 public:
  CrossEntropyLoss(std::vector<double> weights, int64_t classes, double ce_weight)
      : raw_weights_(std::move(weights)), classes_(classes), ce_weight_(ce_weight) {
    if (!raw_weights_.empty()) {
      std::vector<float> w(raw_weights_.begin(), raw_weights_.end());
      host_weights_ = torch::tensor(w, torch::kFloat);
    }
  }

  // [sum of w_y * ce, sum of w_y, sum of ce, pixels] (w = 1 without class weights):
  // PyTorch's weighted mean is the first over the second.
  torch::Tensor sums(const torch::Tensor& logits, const torch::Tensor& target) override {
    STRATA_CHECK_AS(DataError, logits.dim() < 2 || logits.size(1) == classes_,
                    "loss cross_entropy: logits have {} classes, the loss was built for {}", logits.size(1), classes_);
    check_inputs(logits, target);
    NoAutocast no_autocast;
    torch::Tensor plain = ce_sums(logits, target);
    if (!host_weights_.defined()) return torch::cat({plain, plain});
    torch::Tensor x = logits.to(compute_dtype(logits));
    if (!weights_.defined() || weights_.device() != x.device() || weights_.scalar_type() != x.scalar_type()) {
      weights_ = host_weights_.to(x.device(), x.scalar_type());
    }
    torch::Tensor weighted =
        F::cross_entropy(x, target, F::CrossEntropyFuncOptions().weight(weights_).reduction(torch::kSum));
    torch::Tensor weight_sum = weights_.index_select(0, target.reshape(-1)).sum();
    return torch::cat({torch::stack({weighted, weight_sum}), plain});
  }

  torch::Tensor value(const torch::Tensor& sums) override {
    STRATA_CHECK(sums.dim() == 1 && sums.size(0) == 4, "loss cross_entropy: sums of shape {}, expected [4]",
                 sums.sizes());
    NoAutocast no_autocast;
    torch::Tensor loss = sums[0] / sums[1];
    if (ce_weight_ > 0) loss = loss + ce_weight_ * (sums[2] / sums[3]);
    return loss;
  }

  std::string describe() const override {
    std::string w = raw_weights_.empty() ? "none" : fmt::format("{}", raw_weights_);
    return fmt::format("cross_entropy(class weights {}){}", w, ce_suffix(ce_weight_));
  }

 private:
  std::vector<double> raw_weights_;
  int64_t classes_;
  double ce_weight_;
  torch::Tensor host_weights_, weights_;
};

// loss.weights, or `fallback` when empty; ConfigError when the count is not `classes`.
std::vector<double> resolve_weights(const LossConfig& config, int64_t classes, const std::vector<double>& fallback) {
  const std::vector<double>& w = config.weights.empty() ? fallback : config.weights;
  STRATA_CHECK_AS(ConfigError, static_cast<int64_t>(w.size()) == classes,
                  "{} has {} entries {}, but the model has {} classes (model.num_classes): give one weight per class",
                  config.weights.empty() ? fmt::format("the default 'loss.weights' of loss.type '{}'", config.type)
                                         : std::string("'loss.weights'"),
                  w.size(), w, classes);
  return w;
}

std::unique_ptr<Loss> build_multi_dice(const LossConfig& c, int64_t classes) {
  auto w = resolve_weights(c, classes, std::vector<double>(static_cast<size_t>(classes), 1.0));
  return std::make_unique<DiceLoss>("multi_dice", w, c.smooth, c.ce_weight);
}

std::unique_ptr<Loss> build_weighted_dice(const LossConfig& c, int64_t classes) {
  auto w = resolve_weights(c, classes, necrotic_weights());
  return std::make_unique<DiceLoss>("weighted_dice", w, c.smooth, c.ce_weight);
}

std::unique_ptr<Loss> build_cross_entropy(const LossConfig& c, int64_t classes) {
  auto w = c.weights.empty() ? std::vector<double>() : resolve_weights(c, classes, {});
  return std::make_unique<CrossEntropyLoss>(w, classes, c.ce_weight);
}

struct LossType {
  std::string name, description;
  LossFactory build;
};

// The types in registration order (the built-ins first, so loss_types() lists them as
// the docs do), behind a mutex: registration may run on any thread.
struct Registry {
  std::mutex mutex;
  std::vector<LossType> types{
      {"multi_dice", "soft Dice per class over the batch, 1 - Dice averaged with weights (default 1)",
       build_multi_dice},
      {"weighted_dice", "multi_dice with default weights [0.1, 4, 1, 1]", build_weighted_dice},
      {"cross_entropy", "mean pixel cross-entropy, loss.weights as class weights", build_cross_entropy},
  };

  const LossType* find(const std::string& name) const {
    for (const auto& t : types) {
      if (t.name == name) return &t;
    }
    return nullptr;
  }
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

void register_loss(const std::string& name, const std::string& description, LossFactory factory) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  STRATA_CHECK(!name.empty() && factory, "register_loss: a loss type needs a name and a factory");
  STRATA_CHECK(r.find(name) == nullptr, "register_loss: a loss type named '{}' is already registered", name);
  r.types.push_back({name, description, std::move(factory)});
}

std::vector<std::string> loss_types() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<std::string> names;
  for (const auto& t : r.types) names.push_back(t.name);
  return names;
}

std::string loss_description(const std::string& name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  const LossType* t = r.find(name);
  if (t == nullptr) STRATA_THROW(ConfigError, "no loss type '{}'", name);
  return t->description;
}

std::unique_ptr<Loss> make_loss(const LossConfig& config, int64_t num_classes) {
  config.validate();
  LossFactory build;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    if (const LossType* t = r.find(config.type)) build = t->build;
  }
  if (!build) {
    STRATA_THROW(ConfigError, "'loss.type' = '{}': must be one of {}", config.type, fmt::join(loss_types(), ", "));
  }
  return build(config, num_classes);  // outside the lock: a factory may build another registered loss
}

torch::Tensor soft_dice_per_class(const torch::Tensor& logits, const torch::Tensor& target, double smooth) {
  check_inputs(logits, target);
  NoAutocast no_autocast;
  return dice_unchecked(logits, target, smooth);
}

}  // namespace strata::nn
