// A small synthetic image classifier as a train::Task (see classifier_task.h).
#include "classifier_task.h"

#include "strata/core/error.h"
#include "strata/nn/model_registry.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <mutex>
#include <optional>

namespace strata::test {
namespace {

// `n` images of class i % classes: the class's corner square raised by 1.5 under
// unit Gaussian noise, from a generator seeded with `seed`.
std::pair<torch::Tensor, torch::Tensor> make_images(int64_t n, int64_t classes, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::Tensor images = at::normal(0.0, 1.0, {n, 1, 8, 8}, gen);
  torch::Tensor labels = torch::arange(n, torch::kLong).remainder(classes);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = labels[i].item<int64_t>() % 4;  // the corner
    images[i].narrow(1, 4 * (k / 2), 4).narrow(2, 4 * (k % 2), 4).add_(1.5);
  }
  return {images, labels};
}

class Classifier : public nn::Model {
 public:
  explicit Classifier(int64_t classes)
      : classes_(classes),
        hidden_(register_module("hidden", torch::nn::Linear(64, 16))),
        out_(register_module("out", torch::nn::Linear(16, classes))) {}
  torch::Tensor forward(torch::Tensor x) override {
    return out_->forward(torch::relu(hidden_->forward(x.flatten(1))));
  }
  std::string describe() const override { return fmt::format("Classifier(64 -> 16 -> {})", classes_); }

 private:
  int64_t classes_;
  torch::nn::Linear hidden_, out_;
};

// Cross-entropy as {sum over images, images}.
class CrossEntropySums : public nn::Loss {
 public:
  torch::Tensor sums(const torch::Tensor& logits, const torch::Tensor& target) override {
    torch::Tensor total = torch::nn::functional::cross_entropy(
        logits.to(torch::kFloat), target, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    return torch::stack({total, torch::full({}, static_cast<double>(target.size(0)), total.options())});
  }
  torch::Tensor value(const torch::Tensor& sums) override { return sums[0] / sums[1]; }
  std::string describe() const override { return "cross_entropy(mean over images)"; }
};

}  // namespace

std::shared_ptr<nn::Model> make_classifier(int64_t classes) { return std::make_shared<Classifier>(classes); }

class ClassifierTask::Batches : public train::BatchSource {
 public:
  Batches(const torch::Tensor& images, const torch::Tensor& labels, int64_t batch_size,
          const train::TaskContext& c)
      : images_(images.to(c.device)), labels_(labels.to(c.device)), batch_size_(batch_size),
        sampler_(images.size(0), c.rank, c.world_size, data::SamplerOptions{batch_size, c.seed, true}) {}

  int64_t num_items() const override { return sampler_.num_items(); }
  int64_t batch_size() const override { return batch_size_; }
  int64_t num_batches() const override { return sampler_.num_batches(); }
  int64_t start(int64_t epoch, int64_t from, int64_t /*first_draw: no augmentation*/) override {
    plan_ = sampler_.epoch_from(epoch, from);
    next_ = 0;
    return static_cast<int64_t>(plan_.size());
  }
  std::optional<train::TaskBatch> next() override {
    if (next_ >= plan_.size()) return std::nullopt;
    const auto& rows = plan_[next_++].indices;
    torch::Tensor index = torch::tensor(rows, torch::kLong).to(images_.device());
    return train::TaskBatch{images_.index_select(0, index), labels_.index_select(0, index), rows};
  }
  void stop() override { next_ = plan_.size(); }
  double wait_seconds() const override { return 0; }  // in memory: never waits
  void reset_stats() override {}
  std::string describe_batch() const override { return fmt::format("{} 8x8 images", batch_size_); }

 private:
  torch::Tensor images_, labels_;
  int64_t batch_size_;
  data::ShardSampler sampler_;
  std::vector<data::IndexBatch> plan_;
  size_t next_ = 0;
};

ClassifierTask::ClassifierTask(ClassifierSetup setup) : setup_(setup) {}
ClassifierTask::~ClassifierTask() = default;

train::BatchSource& ClassifierTask::train_batches() { return *batches_; }

void ClassifierTask::open(const train::TaskContext& context) {
  context_ = context;
  STRATA_CHECK_AS(ConfigError, setup_.train_items >= setup_.batch_size * context.world_size,
                  "the classifier's {} training images are too few for {} ranks of batch {}", setup_.train_items,
                  context.world_size, setup_.batch_size);
  std::tie(train_images_, train_labels_) = make_images(setup_.train_items, setup_.classes, setup_.data_seed);
  std::tie(val_images_, val_labels_) = make_images(setup_.val_items, setup_.classes, setup_.data_seed + 1);
  batches_ = std::make_unique<Batches>(train_images_, train_labels_, setup_.batch_size, context);
}

// The classifier by name, as a recipe registers its own models: the task builds it from
// its model section through nn::make_model, like the BraTS task builds "unet2d".
std::shared_ptr<nn::Model> ClassifierTask::build_model() {
  static std::once_flag once;
  std::call_once(once, [] {
    nn::register_model(kClassifierModel, "64 -> 16 -> classes perceptron on 8x8 images (tests)",
                       [](const std::string& section) { return make_classifier(YAML::Load(section)["classes"].as<int64_t>()); });
  });
  return nn::make_model(kClassifierModel, model_section());
}

std::string ClassifierTask::model_section() const { return fmt::format("classes: {}\nhidden: 16\n", setup_.classes); }

std::unique_ptr<nn::Loss> ClassifierTask::build_loss() { return std::make_unique<CrossEntropySums>(); }

train::Validation ClassifierTask::validate(nn::Model& model, comm::Communicator& comm) {
  // Rank r scores images r, r + W, ...: every image once over the ranks.
  torch::Tensor mine = torch::arange(context_.rank, setup_.val_items, context_.world_size, torch::kLong);
  torch::Tensor pred = model.forward(val_images_.index_select(0, mine).to(context_.device)).argmax(1).cpu();
  torch::Tensor counts = torch::stack({pred.eq(val_labels_.index_select(0, mine)).sum(), torch::tensor(mine.size(0))})
                             .to(torch::kDouble)
                             .to(context_.device);
  comm.allreduce({counts}, comm::ReduceOp::kSum);
  counts = counts.cpu();
  const double accuracy = counts[0].item<double>() / counts[1].item<double>();
  train::Validation v;
  v.primary = accuracy;
  v.scalars = {{"val/accuracy", accuracy}};
  v.record = nlohmann::json{{"accuracy", accuracy}, {"images", counts[1].item<int64_t>()}}.dump();
  v.summary = fmt::format("val accuracy {:.4f}", accuracy);
  return v;
}

}  // namespace strata::test
