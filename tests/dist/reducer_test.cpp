// GradReducer, GradScaler and replica consistency under mpirun. Every rank computes
// its expected values locally (a 1-rank reference run on the full batch, closed-form
// buffer averages), so a check needs no extra communication.
#include "dist_test.h"
#include "strata/comm/communicator.h"
#include "strata/core/error.h"
#include "strata/train/amp.h"
#include "strata/train/fused_adam.h"
#include "strata/train/grad_reducer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace strata::train {
namespace {

using test::world;

// A small conv net with GroupNorm (per-sample statistics, so data parallelism is
// exactly equivalent to a bigger batch) and an optional branch that forward skips.
struct TinyNetImpl : torch::nn::Module {
  explicit TinyNetImpl(bool with_unused = false) {
    conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(4, 8, 3).padding(1)));
    norm1 = register_module("norm1", torch::nn::GroupNorm(2, 8));
    conv2 = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(8, 16, 3).padding(1)));
    norm2 = register_module("norm2", torch::nn::GroupNorm(4, 16));
    head = register_module("head", torch::nn::Conv2d(16, 4, 1));
    if (with_unused) spare = register_module("spare", torch::nn::Linear(3, 3));
  }
  torch::Tensor forward(torch::Tensor x) {
    x = torch::relu(norm1(conv1(x)));
    x = torch::relu(norm2(conv2(x)));
    return head(x);
  }
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, head{nullptr};
  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Linear spare{nullptr};
};
TORCH_MODULE(TinyNet);

std::vector<std::pair<std::string, torch::Tensor>> named(torch::nn::Module& m) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& item : m.named_parameters()) out.emplace_back(item.key(), item.value());
  return out;
}

torch::Tensor flat_params(torch::nn::Module& m) {
  std::vector<torch::Tensor> ps;
  for (auto& p : m.parameters()) ps.push_back(p.detach().reshape(-1));
  return torch::cat(ps);
}

// The parameters' gradients after the reducer's finish(): bucket views at several ranks,
// autograd's own tensors at one (read them after every step).
std::vector<torch::Tensor> grads_of(torch::nn::Module& m) {
  std::vector<torch::Tensor> g;
  for (auto& p : m.parameters()) g.push_back(p.grad());
  return g;
}

struct Batch {
  torch::Tensor x, y;
};

// The global batch of `step`, identical on every rank (seeded), of n * per_rank items.
Batch global_batch(int step, int64_t items) {
  torch::manual_seed(1000 + step);
  return {torch::randn({items, 4, 8, 8}), torch::randint(0, 4, {items, 8, 8})};
}

class ReducerTest : public ::testing::Test {
 protected:
  void SetUp() override { comm_ = comm::make_communicator(world(), torch::Device(torch::kCPU)); }
  std::unique_ptr<comm::Communicator> comm_;
};

TEST_F(ReducerTest, DataParallelStepsEqualOneRankOnTheWholeBatch) {
  const int n = comm_->size(), r = comm_->rank();
  const int64_t per_rank = 3;
  torch::manual_seed(7);
  TinyNet ddp;
  torch::manual_seed(7);
  TinyNet single;
  ReducerOptions opts;
  opts.first_bucket_mb = 0.0002;  // several buckets even for this small net
  opts.bucket_mb = 0.002;
  GradReducer reducer(named(*ddp), *comm_, opts);
  ASSERT_GT(reducer.num_buckets(), 2);
  torch::optim::SGD opt_ddp(ddp->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  torch::optim::SGD opt_single(single->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));

  for (int step = 0; step < 5; ++step) {
    Batch g = global_batch(step, n * per_rank);
    // This rank's shard: mean loss over B items; the reducer averages over ranks.
    reducer.zero_grad();
    auto xs = g.x.narrow(0, r * per_rank, per_rank), ys = g.y.narrow(0, r * per_rank, per_rank);
    torch::nn::functional::cross_entropy(ddp->forward(xs), ys).backward();
    reducer.finish();
    opt_ddp.step();
    // Reference: one process, mean loss over all n * B items.
    opt_single.zero_grad();
    torch::nn::functional::cross_entropy(single->forward(g.x), g.y).backward();
    opt_single.step();
  }
  auto a = flat_params(*ddp), b = flat_params(*single);
  EXPECT_TRUE(torch::allclose(a, b, /*rtol=*/1e-5, /*atol=*/1e-6))
      << "max |diff| " << (a - b).abs().max().item<double>();
}

TEST_F(ReducerTest, ReplicasStayBitwiseIdentical) {
  torch::manual_seed(100 + comm_->rank());  // deliberately different initialisations
  TinyNet net;
  broadcast_module_state(*net, *comm_);
  GradReducer reducer(named(*net), *comm_);
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(1e-2));
  for (int step = 0; step < 4; ++step) {
    torch::manual_seed(5000 + 31 * step + comm_->rank());  // each rank its own data
    auto x = torch::randn({2, 4, 8, 8});
    auto y = torch::randint(0, 4, {2, 8, 8});
    reducer.zero_grad();
    torch::nn::functional::cross_entropy(net->forward(x), y).backward();
    reducer.finish();
    opt.step();
  }
  auto mine = flat_params(*net);
  auto root = mine.clone();
  comm_->broadcast({root}, 0);
  EXPECT_TRUE(test::all_ranks(torch::equal(mine, root)));
}

TEST_F(ReducerTest, AtOneRankGradientsAreAutogradsOwn) {
  // One rank: no buckets, no copies. zero_grad() unsets .grad (PyTorch's set_to_none), so
  // backward's gradient is taken as it comes; a no-sync pass adds the next one to it.
  if (comm_->size() != 1) GTEST_SKIP() << "one rank only";
  torch::manual_seed(3);
  TinyNet net;
  torch::manual_seed(3);
  TinyNet plain;
  GradReducer reducer(named(*net), *comm_);
  auto x = torch::randn({2, 4, 8, 8});
  auto y = torch::randint(0, 4, {2, 8, 8});
  for (int step = 0; step < 2; ++step) {
    reducer.zero_grad();
    for (const auto& p : net->parameters()) EXPECT_FALSE(p.grad().defined());
    reducer.set_sync(false);
    torch::nn::functional::cross_entropy(net->forward(x), y).backward();
    reducer.set_sync(true);
    torch::nn::functional::cross_entropy(net->forward(x * 2), y).backward();
    reducer.finish();
    EXPECT_TRUE(reducer.last_launches().empty());
  }
  for (auto& p : plain->parameters()) p.mutable_grad() = torch::Tensor();
  torch::nn::functional::cross_entropy(plain->forward(x), y).backward();
  torch::nn::functional::cross_entropy(plain->forward(x * 2), y).backward();
  auto mine = net->parameters(), theirs = plain->parameters();
  for (size_t i = 0; i < mine.size(); ++i) EXPECT_TRUE(torch::equal(mine[i].grad(), theirs[i].grad())) << i;
  // A one-rank collective is the identity, done at once.
  auto t = torch::arange(5, torch::kLong);
  auto work = comm_->allreduce_async({t}, comm::ReduceOp::kAvg);
  EXPECT_TRUE(work->is_completed());
  EXPECT_TRUE(torch::equal(t, torch::arange(5, torch::kLong)));
}

TEST_F(ReducerTest, EachStepsGradientsAreThatStepsAlone) {
  // zero_grad() does not zero the buckets: backward writes each slot. A step's gradients
  // must still be its own (nothing left from the step before), a parameter used in one
  // step and not in the next must count as zero in the second, and micro-batches must add.
  // Every rank takes the same batch, so the average over ranks is a plain step's gradient.
  torch::manual_seed(3);
  TinyNet net(/*with_unused=*/true);
  torch::manual_seed(3);
  TinyNet plain(/*with_unused=*/true);
  ReducerOptions opts;
  opts.allow_unused = true;
  opts.first_bucket_mb = 0.0002;
  opts.bucket_mb = 0.002;
  GradReducer reducer(named(*net), *comm_, opts);
  auto loss_of = [](TinyNet& m, int step, bool use_spare) {
    torch::manual_seed(700 + step);
    auto x = torch::randn({2, 4, 8, 8});
    auto y = torch::randint(0, 4, {2, 8, 8});
    auto loss = torch::nn::functional::cross_entropy(m->forward(x), y);
    if (use_spare) loss = loss + m->spare->forward(torch::ones({1, 3}) * (step + 1)).sum();
    return loss;
  };
  auto expect_plain = [&](int step) {
    auto mine = net->parameters(), theirs = plain->parameters();
    for (size_t i = 0; i < mine.size(); ++i) {
      const auto want = theirs[i].grad().defined() ? theirs[i].grad() : torch::zeros_like(theirs[i]);
      ASSERT_TRUE(mine[i].grad().defined()) << "step " << step << ", parameter " << i;
      EXPECT_TRUE(torch::allclose(mine[i].grad(), want, 1e-6, 1e-7))
          << "step " << step << ", parameter " << i << ": max |diff| "
          << (mine[i].grad() - want).abs().max().item<double>();
    }
  };
  // Step 0 uses `spare`, step 1 does not, step 2 adds two micro-batches (the first with it).
  for (int step = 0; step < 3; ++step) {
    reducer.zero_grad();
    for (auto& p : plain->parameters()) p.mutable_grad() = torch::Tensor();
    if (step == 2) {
      reducer.set_sync(false);
      loss_of(net, 20, true).backward();
      loss_of(plain, 20, true).backward();
      reducer.set_sync(true);
    }
    loss_of(net, step, step == 0).backward();
    loss_of(plain, step, step == 0).backward();
    reducer.finish();
    expect_plain(step);
  }
  EXPECT_GT(net->spare->weight.grad().abs().sum().item<float>(), 0.0f);
}

// Passes x on and gives `w` no gradient at all (an undefined one), as a custom Function
// may for an input it treats as constant.
struct NoGradientForW : torch::autograd::Function<NoGradientForW> {
  static torch::Tensor forward(torch::autograd::AutogradContext*, const torch::Tensor& x, const torch::Tensor& w) {
    return x + 0 * w.sum();
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext*,
                                                 torch::autograd::variable_list grads) {
    return {grads[0], torch::Tensor()};
  }
};

TEST_F(ReducerTest, AnUndefinedGradientCountsAsZeroAndBackwardBeforeZeroGradIsAnError) {
  auto a = torch::full({4}, 2.0).requires_grad_(true);
  auto w = torch::ones({3}).requires_grad_(true);
  ReducerOptions opts;
  opts.allow_unused = true;
  GradReducer reducer({{"a", a}, {"w", w}}, *comm_, opts);
  auto loss = [&] { return NoGradientForW::apply(a * torch::arange(4, torch::kFloat), w).sum(); };
  // Outside a step (no zero_grad() yet): refused, whatever the number of ranks.
  EXPECT_ANY_THROW(loss().backward());
  for (int step = 0; step < 2; ++step) {
    reducer.zero_grad();
    loss().backward();
    reducer.finish();
    ASSERT_TRUE(w.grad().defined());
    EXPECT_EQ(w.grad().abs().sum().item<float>(), 0.0f) << "step " << step;
    EXPECT_TRUE(torch::equal(a.grad(), torch::arange(4, torch::kFloat))) << "step " << step;
  }
}

TEST_F(ReducerTest, FirstBucketIsIssuedBeforeBackwardEnds) {
  if (comm_->size() == 1) GTEST_SKIP() << "one rank issues no buckets";
  torch::manual_seed(3);
  TinyNet net;
  ReducerOptions opts;
  opts.first_bucket_mb = 0.0005;  // the head alone
  opts.bucket_mb = 0.004;
  GradReducer reducer(named(*net), *comm_, opts);
  auto x = torch::randn({2, 4, 8, 8});
  auto y = torch::randint(0, 4, {2, 8, 8});
  reducer.zero_grad();
  torch::nn::functional::cross_entropy(net->forward(x), y).backward();
  reducer.finish();
  const auto& launches = reducer.last_launches();
  ASSERT_EQ(static_cast<int>(launches.size()), reducer.num_buckets());
  for (size_t i = 0; i < launches.size(); ++i) EXPECT_EQ(launches[i].bucket, static_cast<int>(i));
  // Bucket 0 holds the last layer's parameters, ready first: it must go out while most
  // gradients are still being computed.
  EXPECT_TRUE(launches[0].during_backward);
  EXPECT_LT(launches[0].ready_params, launches[0].total_params);
  EXPECT_EQ(reducer.bucket_params(0).front(), "head.bias");
}

TEST_F(ReducerTest, NoOverlapIssuesEverythingAfterBackward) {
  if (comm_->size() == 1) GTEST_SKIP() << "one rank issues no buckets";
  torch::manual_seed(3);
  TinyNet net;
  ReducerOptions opts;
  opts.overlap = false;
  opts.first_bucket_mb = 0.0005;
  GradReducer reducer(named(*net), *comm_, opts);
  reducer.zero_grad();
  torch::nn::functional::cross_entropy(net->forward(torch::randn({1, 4, 8, 8})), torch::randint(0, 4, {1, 8, 8}))
      .backward();
  reducer.finish();
  for (const auto& l : reducer.last_launches()) EXPECT_FALSE(l.during_backward);
  EXPECT_EQ(reducer.stats().buckets_in_backward, 0);
}

TEST_F(ReducerTest, UnusedParameterIsAnErrorNamingIt) {
  torch::manual_seed(3);
  TinyNet net(/*with_unused=*/true);
  GradReducer reducer(named(*net), *comm_);
  reducer.zero_grad();
  torch::nn::functional::cross_entropy(net->forward(torch::randn({1, 4, 8, 8})), torch::randint(0, 4, {1, 8, 8}))
      .backward();
  std::string message;
  try {
    reducer.finish();
  } catch (const core::ConfigError& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("spare.weight"), std::string::npos) << message;
  EXPECT_NE(message.find("train.allow_unused"), std::string::npos) << message;
}

TEST_F(ReducerTest, UnusedParameterCountsAsZeroWhenAllowed) {
  torch::manual_seed(3);
  TinyNet net(/*with_unused=*/true);
  ReducerOptions opts;
  opts.allow_unused = true;
  GradReducer reducer(named(*net), *comm_, opts);
  reducer.zero_grad();
  torch::nn::functional::cross_entropy(net->forward(torch::randn({1, 4, 8, 8})), torch::randint(0, 4, {1, 8, 8}))
      .backward();
  reducer.finish();
  EXPECT_EQ(net->spare->weight.grad().abs().sum().item<float>(), 0.0f);
  EXPECT_GT(net->head->weight.grad().abs().sum().item<float>(), 0.0f);
}

TEST_F(ReducerTest, AParameterNoRankUsedIsNotUpdatedOneSomeRankUsedIs) {
  // As in DDP: weight decay and Adam's moments must not move a parameter that got no
  // gradient anywhere; one that some rank used is a normal parameter everywhere.
  torch::manual_seed(3);
  TinyNet net(/*with_unused=*/true);
  auto extra = net->register_parameter("extra", torch::ones({2}));
  ReducerOptions opts;
  opts.allow_unused = true;
  GradReducer reducer(named(*net), *comm_, opts);
  torch::optim::Adam adam(net->parameters(), torch::optim::AdamOptions(0.1).weight_decay(0.5));
  const auto spare0 = net->spare->weight.detach().clone(), extra0 = extra.detach().clone();
  const auto head0 = net->head->weight.detach().clone();
  reducer.zero_grad();
  auto out = net->forward(torch::randn({1, 4, 8, 8}));
  if (comm_->rank() == comm_->size() - 1) out = out + extra.sum() * 0;  // used (with a zero gradient) on one rank
  torch::nn::functional::cross_entropy(out, torch::randint(0, 4, {1, 8, 8})).backward();
  reducer.finish();
  EXPECT_EQ(reducer.unused_everywhere(), (std::vector<std::string>{"spare.weight", "spare.bias"}));
  reducer.hide_unused_grads();
  adam.step();
  EXPECT_TRUE(torch::equal(net->spare->weight, spare0)) << "a parameter no rank used was updated";
  EXPECT_FALSE(torch::equal(extra, extra0)) << "weight decay should move a parameter some rank used";
  EXPECT_FALSE(torch::equal(net->head->weight, head0));
  reducer.zero_grad();  // every .grad is unset until backward
  EXPECT_FALSE(net->spare->weight.grad().defined());
  torch::nn::functional::cross_entropy(net->forward(torch::randn({1, 4, 8, 8})), torch::randint(0, 4, {1, 8, 8}))
      .backward();
  reducer.finish();  // a zero in its slot again (one rank: zeros of its own)
  ASSERT_TRUE(net->spare->weight.grad().defined());
  EXPECT_EQ(net->spare->weight.grad().abs().sum().item<float>(), 0.0f);
}

TEST_F(ReducerTest, BroadcastAndBufferAveraging) {
  const int n = comm_->size(), r = comm_->rank();
  torch::manual_seed(50 + r);
  torch::nn::BatchNorm2d bn(3);
  broadcast_module_state(*bn, *comm_);
  auto w = bn->weight.detach().clone();
  auto root_w = w.clone();
  comm_->broadcast({root_w}, 0);
  EXPECT_TRUE(torch::equal(w, root_w));
  // Running stats differ per rank (each saw its own batches): averaged afterwards.
  {
    torch::NoGradGuard no_grad;
    bn->running_mean.fill_(static_cast<float>(r));
    bn->running_var.fill_(static_cast<float>(2 * r + 1));
  }
  average_buffers(*bn, *comm_);
  EXPECT_TRUE(torch::allclose(bn->running_mean, torch::full({3}, (n - 1) / 2.0f)));
  EXPECT_TRUE(torch::allclose(bn->running_var, torch::full({3}, static_cast<float>(n))));  // mean of 2r+1
}

TEST_F(ReducerTest, InfOnOneRankSkipsTheStepEverywhereAndBacksOff) {
  torch::manual_seed(3);
  TinyNet net;
  broadcast_module_state(*net, *comm_);
  GradReducer reducer(named(*net), *comm_);
  ScalerOptions so;
  so.growth_interval = 2;
  GradScaler scaler(/*enabled=*/true, torch::Device(torch::kCPU), comm_.get(), so);
  torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(0.1));
  auto x = torch::randn({1, 4, 8, 8});
  auto y = torch::randint(0, 4, {1, 8, 8});
  comm_->broadcast({x, y}, 0);

  auto before = flat_params(*net);
  reducer.zero_grad();
  scaler.scale(torch::nn::functional::cross_entropy(net->forward(x), y)).backward();
  reducer.finish();
  // After the allreduce, only the last rank's gradient goes bad: the skip must still
  // be unanimous, which only the reduced found-inf flag can guarantee.
  if (comm_->rank() == comm_->size() - 1) {
    torch::NoGradGuard no_grad;
    net->head->weight.grad().view(-1)[0] = std::numeric_limits<float>::infinity();
  }
  bool skip = scaler.unscale_and_check(grads_of(*net));
  if (!skip) opt.step();
  scaler.update();
  EXPECT_TRUE(test::all_ranks(skip));
  EXPECT_TRUE(torch::equal(flat_params(*net), before));
  EXPECT_DOUBLE_EQ(scaler.scale_value(), 32768.0);
  EXPECT_EQ(scaler.skipped_steps(), 1);

  // Two clean steps grow the scale back (growth_interval 2).
  for (int k = 0; k < 2; ++k) {
    reducer.zero_grad();
    scaler.scale(torch::nn::functional::cross_entropy(net->forward(x), y)).backward();
    reducer.finish();
    ASSERT_FALSE(scaler.unscale_and_check(grads_of(*net)));
    opt.step();
    scaler.update();
  }
  EXPECT_DOUBLE_EQ(scaler.scale_value(), 65536.0);
  EXPECT_FALSE(torch::equal(flat_params(*net), before));
}

// The same unanimity on the synchronisation-free fp16 path: unscale() leaves the flag on
// the device and FusedAdam skips inside its kernel, for every parameter of the model.
TEST_F(ReducerTest, DeviceSideSkipWithFusedAdam) {
  torch::manual_seed(3);
  TinyNet net;
  broadcast_module_state(*net, *comm_);
  GradReducer reducer(named(*net), *comm_);
  GradScaler scaler(/*enabled=*/true, torch::Device(torch::kCPU), comm_.get());
  FusedAdam opt(net->parameters(), torch::optim::AdamOptions(1e-2));
  auto x = torch::randn({1, 4, 8, 8});
  auto y = torch::randint(0, 4, {1, 8, 8});
  comm_->broadcast({x, y}, 0);
  auto step = [&](bool poison) {
    reducer.zero_grad();
    scaler.scale(torch::nn::functional::cross_entropy(net->forward(x), y)).backward();
    reducer.finish();
    if (poison && comm_->rank() == comm_->size() - 1) {
      torch::NoGradGuard no_grad;
      net->conv1->weight.grad().view(-1)[3] = std::numeric_limits<float>::quiet_NaN();
    }
    scaler.unscale(grads_of(*net));
    opt.step_skipping(scaler.found_inf());
    scaler.update();
  };
  auto before = flat_params(*net);
  step(/*poison=*/true);
  EXPECT_TRUE(torch::equal(flat_params(*net), before));  // skipped on every rank
  EXPECT_DOUBLE_EQ(scaler.scale_value(), 32768.0);
  EXPECT_EQ(scaler.skipped_steps(), 1);
  step(/*poison=*/false);
  auto after = flat_params(*net);
  EXPECT_FALSE(torch::equal(after, before));
  auto root = after.clone();
  comm_->broadcast({root}, 0);
  EXPECT_TRUE(test::all_ranks(torch::equal(after, root)));  // replicas still identical
  EXPECT_EQ(scaler.skipped_steps(), 1);
}

}  // namespace
}  // namespace strata::train
