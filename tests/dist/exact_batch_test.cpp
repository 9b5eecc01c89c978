// One model, any batch: N ranks x batch B with the global loss (loss.reduce global) and
// SyncBatchNorm2d take the step one rank takes on the concatenated N*B slices, and K
// accumulated micro-batches the step of one batch of K*B (GradStep, grad_step.h). In
// float64, so "equal" means to 1e-9: each rank computes the one-rank reference itself on
// the whole global batch (seeded, identical everywhere), so a check needs no extra
// communication; replicas are compared bitwise after every step.
#include "dist_test.h"
#include "strata/comm/communicator.h"
#include "strata/nn/loss.h"
#include "strata/nn/sync_batch_norm.h"
#include "strata/train/amp.h"
#include "strata/train/grad_reducer.h"
#include "strata/train/grad_step.h"

#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>

namespace strata::train {
namespace {

using test::world;

// conv 3x3 -> norm -> relu -> conv 3x3 -> norm -> relu -> conv 1x1, 4 classes.
torch::nn::Sequential make_net(const std::string& norm) {
  namespace tnn = torch::nn;
  auto make_norm = [&](int64_t c) -> tnn::AnyModule {
    if (norm == "sync_batch") return tnn::AnyModule(nn::SyncBatchNorm2d(c));
    if (norm == "batch") return tnn::AnyModule(tnn::BatchNorm2d(c));
    return tnn::AnyModule(tnn::GroupNorm(2, c));
  };
  torch::manual_seed(11);  // the same initial weights for every net, every rank
  tnn::Sequential net;
  net->push_back("conv1", tnn::Conv2d(tnn::Conv2dOptions(4, 6, 3).padding(1).bias(false)));
  net->push_back("norm1", make_norm(6));
  net->push_back("relu1", tnn::ReLU());
  net->push_back("conv2", tnn::Conv2d(tnn::Conv2dOptions(6, 6, 3).padding(1).bias(false)));
  net->push_back("norm2", make_norm(6));
  net->push_back("relu2", tnn::ReLU());
  net->push_back("head", tnn::Conv2d(6, 4, 1));
  net->to(torch::kDouble);
  return net;
}

torch::Tensor flat(const std::vector<torch::Tensor>& ts) {
  std::vector<torch::Tensor> parts;
  for (const auto& t : ts) parts.push_back(t.detach().to(torch::kDouble).reshape(-1));
  return parts.empty() ? torch::zeros({0}, torch::kDouble) : torch::cat(parts);
}

std::vector<std::pair<std::string, torch::Tensor>> named(torch::nn::Module& m) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& item : m.named_parameters()) out.emplace_back(item.key(), item.value());
  return out;
}

// The global batch of `step`: `items` slices, the same on every rank. Labels drawn
// with class 3 rare, so the Dice of a small batch differs from the big batch's.
std::pair<torch::Tensor, torch::Tensor> global_batch(int step, int64_t items) {
  torch::manual_seed(2000 + step);
  torch::Tensor x = torch::randn({items, 4, 8, 8}, torch::kDouble) + 0.5;
  torch::Tensor y = torch::randint(0, 3, {items, 8, 8});
  y.masked_fill_(torch::rand({items, 8, 8}) < 0.05, 3);
  return {x, y};
}

struct Case {
  const char* name;
  nn::LossConfig loss;
  const char* norm;       // of the data-parallel net; the reference uses batch for sync_batch
  int64_t per_rank;       // B
  int64_t accumulate;     // K
  bool global = true;
};

nn::LossConfig loss_config(const std::string& type, double ce_weight, std::vector<double> weights = {}) {
  nn::LossConfig c;
  c.type = type;
  c.ce_weight = ce_weight;
  c.weights = std::move(weights);
  return c;
}

class ExactBatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    comm_ = comm::make_communicator(world(), torch::Device(torch::kCPU));
    auto* c = comm_.get();
    sum_ = std::make_shared<const nn::SumOverRanks>(
        [c](torch::Tensor& t) { c->allreduce_async({t}, comm::ReduceOp::kSum)->wait(); });
  }

  // Runs `steps` SGD steps of `c` data-parallel and of the one-rank reference on the
  // whole global batch (as K micro-batches of N*B under one loss); returns the largest |difference| of parameters and buffers
  // over the steps, and checks that replicas stay bitwise identical after every step.
  double max_difference(const Case& c, int steps = 3) {
    const int n = comm_->size(), r = comm_->rank();
    const int64_t b = c.per_rank, k_count = c.accumulate;
    torch::nn::Sequential ddp = make_net(c.norm);
    torch::nn::Sequential ref = make_net(std::string(c.norm) == "sync_batch" ? "batch" : c.norm);
    nn::set_sum_over_ranks(*ddp, sum_);
    ReducerOptions ro;
    ro.first_bucket_mb = 0.0005;  // several buckets
    ro.bucket_mb = 0.002;
    GradReducer reducer(named(*ddp), *comm_, ro);
    GradScaler scaler(false, torch::kCPU, comm_.get());
    auto loss = nn::make_loss(c.loss, 4);
    auto ref_loss = nn::make_loss(c.loss, 4);
    GradStepOptions gso;
    gso.global = c.global;
    GradStep step(*ddp, [&](const torch::Tensor& x) { return ddp->forward(x); }, *loss, reducer, *comm_, scaler, gso);
    // SGD, not Adam: Adam's update hardly sees a gradient off by a constant factor.
    auto sgd = torch::optim::SGDOptions(0.5).momentum(0.9);
    torch::optim::SGD opt(ddp->parameters(), sgd), ref_opt(ref->parameters(), sgd);

    double worst = 0;
    for (int s = 0; s < steps; ++s) {
      auto [x, y] = global_batch(s, n * k_count * b);
      // Micro-batch k of rank r: rows [(k * n + r) * b, + b), so the union of the
      // step's micro-batches over ranks is the whole global batch.
      std::vector<MicroBatch> micro;
      for (int64_t k = 0; k < k_count; ++k) {
        const int64_t at = (k * n + r) * b;
        micro.push_back({x.narrow(0, at, b), y.narrow(0, at, b)});
      }
      step.run(micro);
      EXPECT_EQ(static_cast<int>(reducer.last_launches().size()), reducer.num_buckets())
          << "one allreduce per bucket per optimizer step";
      opt.step();
      // The reference: one rank, K micro-batches of N*B slices (the global micro-batch
      // k is rows [k*N*B, (k+1)*N*B)), one loss over all of them, one backward.
      ref_opt.zero_grad();
      torch::Tensor total;
      for (int64_t k = 0; k < k_count; ++k) {
        torch::Tensor sums = ref_loss->sums(ref->forward(x.narrow(0, k * n * b, n * b)), y.narrow(0, k * n * b, n * b));
        total = k == 0 ? sums : total + sums;
      }
      ref_loss->value(total).backward();
      ref_opt.step();

      torch::Tensor mine = torch::cat({flat(ddp->parameters()), flat(ddp->buffers())});
      torch::Tensor root = mine.clone();
      comm_->broadcast({root}, 0);
      EXPECT_TRUE(test::all_ranks(torch::equal(mine, root))) << c.name << ": replicas differ after step " << s;
      torch::Tensor want = torch::cat({flat(ref->parameters()), flat(ref->buffers())});
      worst = std::max(worst, (mine - want).abs().max().item<double>());
    }
    return worst;
  }

  std::unique_ptr<comm::Communicator> comm_;
  std::shared_ptr<const nn::SumOverRanks> sum_;
};

constexpr double kExact = 1e-9;  // float64, 3 SGD steps

TEST_F(ExactBatchTest, GlobalLossAndSyncBatchNormEqualOneRankOnTheConcatenatedBatch) {
  const std::vector<Case> cases{
      {"multi_dice + ce, sync_batch", loss_config("multi_dice", 0.5), "sync_batch", 3, 1},
      {"weighted_dice, sync_batch", loss_config("weighted_dice", 0), "sync_batch", 2, 1},
      {"cross_entropy with class weights, sync_batch", loss_config("cross_entropy", 0.3, {0.2, 1, 2, 3}),
       "sync_batch", 3, 1},
  };
  for (const Case& c : cases) {
    double d = max_difference(c);
    EXPECT_LT(d, kExact) << c.name;
    if (comm_->rank() == 0) std::printf("%s: max |difference| %.3g\n", c.name, d);
  }
}

TEST_F(ExactBatchTest, AccumulatedMicroBatchesEqualOneBatchOfAllOfThem) {
  // With GroupNorm (per-slice statistics), N ranks x K micro-batches of B are one
  // rank's batch of N*K*B. BatchNorm normalises each micro-batch with its own
  // statistics under accumulation (PyTorch's too), so with sync_batch the reference
  // is one rank accumulating K micro-batches of N*B under one loss.
  const std::vector<Case> cases{
      {"multi_dice + ce, sync_batch, K 2", loss_config("multi_dice", 0.5), "sync_batch", 2, 2},
      {"multi_dice + ce, K 3", loss_config("multi_dice", 0.5), "group", 2, 3},
      {"weighted_dice, K 2", loss_config("weighted_dice", 0), "group", 3, 2},
      {"cross_entropy local (a mean: exact too), K 3", loss_config("cross_entropy", 0), "group", 2, 3, false},
  };
  for (const Case& c : cases) {
    double d = max_difference(c);
    EXPECT_LT(d, kExact) << c.name;
  }
}

TEST_F(ExactBatchTest, LocalDiceIsNotTheGlobalBatchDice) {
  // The check above can see the difference it rules out: each rank's own Dice,
  // averaged, is a different step at N > 1.
  Case c{"multi_dice local", loss_config("multi_dice", 0), "sync_batch", 3, 1, false};
  EXPECT_GT(max_difference(c), 1e-6);
}

TEST_F(ExactBatchTest, SyncBatchNormHandlesChannelsLastAndBf16Autocast) {
  const int n = comm_->size(), r = comm_->rank();
  torch::manual_seed(21);
  torch::Tensor x = (torch::randn({2 * n, 5, 6, 6}) * 3 + 2).to(torch::kBFloat16).to(torch::kFloat);
  nn::SyncBatchNorm2d sync(5);
  torch::nn::BatchNorm2d plain(5);
  nn::set_sum_over_ranks(*sync, sum_);
  torch::Tensor mine = x.narrow(0, 2 * r, 2).to(torch::kBFloat16).contiguous(torch::MemoryFormat::ChannelsLast);
  mine.requires_grad_(true);
  torch::Tensor y;
  {
    at::autocast::set_autocast_enabled(at::kCPU, true);
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
    y = sync->forward(mine);
    at::autocast::set_autocast_enabled(at::kCPU, false);
    at::autocast::clear_cache();
  }
  EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(y.is_contiguous(torch::MemoryFormat::ChannelsLast));
  torch::Tensor want = plain->forward(x);
  // bf16 output of float32 statistics: within bf16's rounding of the reference.
  EXPECT_TRUE(torch::allclose(y.to(torch::kFloat), want.narrow(0, 2 * r, 2), 2e-2, 2e-2));
  EXPECT_TRUE(torch::allclose(sync->running_mean, plain->running_mean, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(sync->running_var, plain->running_var, 1e-5, 1e-6));
  // Backward: the global batch's input gradient, in the input's dtype and format.
  torch::Tensor w = torch::linspace(-1, 1, 5 * 36).view({1, 5, 6, 6});
  (y.to(torch::kFloat) * w).sum().backward();
  EXPECT_EQ(mine.grad().scalar_type(), torch::kBFloat16);
  torch::Tensor xr = x.clone().requires_grad_(true);
  (plain->forward(xr) * w).sum().backward();
  EXPECT_TRUE(torch::allclose(mine.grad().to(torch::kFloat), xr.grad().narrow(0, 2 * r, 2), 3e-2, 3e-2));
}

TEST_F(ExactBatchTest, SyncBatchNorm3dIsBatchNorm3dOfTheGlobalBatchInChannelsLast3d) {
  // Volumes [B, C, D, H, W] (UNet3d's norm=sync_batch): each rank's two volumes, in
  // ChannelsLast3d, normalised with the statistics of all ranks' volumes, in float64.
  const int n = comm_->size(), r = comm_->rank();
  torch::manual_seed(22);
  torch::Tensor x = torch::randn({2 * n, 3, 4, 5, 3}, torch::kDouble) * 2 + 1;
  nn::SyncBatchNorm3d sync(3);
  torch::nn::BatchNorm3d plain(3);
  sync->to(torch::kDouble);
  plain->to(torch::kDouble);
  nn::set_sum_over_ranks(*sync, sum_);
  torch::Tensor mine = x.narrow(0, 2 * r, 2).contiguous(torch::MemoryFormat::ChannelsLast3d).requires_grad_(true);
  torch::Tensor y = sync->forward(mine);
  EXPECT_TRUE(y.is_contiguous(torch::MemoryFormat::ChannelsLast3d));
  torch::Tensor xr = x.clone().requires_grad_(true);
  torch::Tensor want = plain->forward(xr);
  EXPECT_TRUE(torch::allclose(y, want.narrow(0, 2 * r, 2), 1e-10, 1e-12));
  EXPECT_TRUE(torch::allclose(sync->running_var, plain->running_var, 1e-10, 1e-12));
  torch::Tensor w = torch::linspace(-1, 1, 3 * 60, torch::kDouble).view({1, 3, 4, 5, 3});
  (y * w).sum().backward();
  (want * w).sum().backward();
  EXPECT_TRUE(torch::allclose(mine.grad(), xr.grad().narrow(0, 2 * r, 2), 1e-9, 1e-11));
}

TEST_F(ExactBatchTest, InfInAnEarlyMicroBatchOfOneRankSkipsTheWholeStepEverywhere) {
  // The non-finite gradient of micro-batch 0 on the last rank must survive the
  // accumulation (no collective until the last micro-batch) and the skip must be
  // unanimous.
  const int n = comm_->size(), r = comm_->rank();
  torch::nn::Sequential net = make_net("group");
  GradReducer reducer(named(*net), *comm_);
  GradScaler scaler(/*enabled=*/true, torch::kCPU, comm_.get());
  auto loss = nn::make_loss(loss_config("multi_dice", 0), 4);
  GradStepOptions gso;
  gso.global = false;
  GradStep step(*net, [&](const torch::Tensor& x) { return net->forward(x); }, *loss, reducer, *comm_, scaler, gso);
  torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(0.1));
  std::vector<torch::Tensor> grads;
  for (auto& p : net->parameters()) grads.push_back(p.grad());
  auto [x, y] = global_batch(0, 2 * 3 * n);
  std::vector<MicroBatch> micro;
  for (int64_t k = 0; k < 3; ++k) micro.push_back({x.narrow(0, (k * n + r) * 2, 2).clone(), y.narrow(0, (k * n + r) * 2, 2)});
  if (r == n - 1) micro[0].images[0][0][0][0] = std::numeric_limits<double>::infinity();
  const torch::Tensor before = flat(net->parameters());
  step.run(micro);
  bool skip = scaler.unscale_and_check(grads);
  if (!skip) opt.step();
  scaler.update();
  EXPECT_TRUE(test::all_ranks(skip));
  EXPECT_TRUE(torch::equal(flat(net->parameters()), before));
  EXPECT_DOUBLE_EQ(scaler.scale_value(), 32768.0);
}

}  // namespace
}  // namespace strata::train
