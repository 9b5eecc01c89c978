// The rank-consistent GradScaler (see amp.h).
#include "strata/train/amp.h"

#include "strata/core/error.h"
#include "strata/core/log.h"

namespace strata::train {

GradScaler::GradScaler(bool enabled, const torch::Device& device, comm::Communicator* comm, ScalerOptions options)
    : enabled_(enabled), comm_(comm), options_(options) {
  auto f = torch::TensorOptions().device(device).dtype(torch::kFloat);
  scale_ = torch::full({1}, enabled ? options.init_scale : 1.0, f);
  growth_tracker_ = torch::zeros({1}, f.dtype(torch::kInt));
  found_inf_ = torch::zeros({1}, f);
  skipped_ = torch::zeros({1}, f.dtype(torch::kLong));
  consecutive_ = torch::zeros({1}, f.dtype(torch::kLong));
}

torch::Tensor GradScaler::scale(const torch::Tensor& loss) const {
  return enabled_ ? loss * scale_.to(loss.scalar_type()) : loss;
}

void GradScaler::unscale(const std::vector<torch::Tensor>& grads) {
  if (!enabled_) return;
  torch::NoGradGuard no_grad;
  found_inf_.zero_();
  auto inv_scale = scale_.reciprocal();
  std::vector<torch::Tensor> defined;
  for (const auto& g : grads) {
    if (g.defined()) defined.push_back(g);
  }
  at::_amp_foreach_non_finite_check_and_unscale_(defined, found_inf_, inv_scale);
  // Sum the flag over ranks: a step is skipped everywhere if any rank saw inf/nan. (After
  // GradReducer's average an inf is everywhere already; this makes the decision
  // unanimous whatever happened to a rank's gradients after the allreduce.) wait()
  // orders it on the device: no host synchronisation on a GPU.
  if (comm_ && comm_->size() > 1) comm_->allreduce_async({found_inf_}, comm::ReduceOp::kSum)->wait();
  const torch::Tensor skip = (found_inf_ > 0).to(torch::kLong);
  skipped_.add_(skip);
  consecutive_.add_(1).mul_(skip);  // a clean step starts the count again
}

bool GradScaler::unscale_and_check(const std::vector<torch::Tensor>& grads) {
  if (!enabled_) return false;
  unscale(grads);
  return found_inf_.item<float>() > 0;
}

int64_t GradScaler::skipped_steps() const { return skipped_.item<int64_t>(); }

std::string GradScaler::stall() const {
  if (!enabled_) return "";
  const int64_t run = consecutive_.item<int64_t>();
  if (run < options_.max_consecutive_skips) return "";
  return fmt::format("the last {} steps were all skipped by fp16 loss scaling (inf/nan gradients at every scale, "
                     "down to {:g}), so training no longer moves", run, scale_value());
}

void GradScaler::update() {
  if (!enabled_) return;
  at::_amp_update_scale_(scale_, growth_tracker_, found_inf_, options_.growth_factor, options_.backoff_factor,
                         options_.growth_interval);
  found_inf_.zero_();
}

double GradScaler::scale_value() const { return scale_.item<double>(); }

void GradScaler::save(torch::serialize::OutputArchive& archive) const {
  archive.write("scaler.scale", scale_.cpu());
  archive.write("scaler.growth_tracker", growth_tracker_.cpu());
  archive.write("scaler.skipped", skipped_.cpu());
}

void GradScaler::load(torch::serialize::InputArchive& archive) {
  torch::Tensor scale, tracker, skipped;
  archive.read("scaler.scale", scale);
  archive.read("scaler.growth_tracker", tracker);
  archive.read("scaler.skipped", skipped);
  scale_.copy_(scale);
  growth_tracker_.copy_(tracker);
  skipped_.copy_(skipped.reshape({1}));
}

}  // namespace strata::train
