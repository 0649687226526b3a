#include "weight_average.hpp"

#include <torch/torch.h>

#include <algorithm>

namespace bitnetmcu::train {

namespace {
const std::string kPrefix = "training/";
const std::string kUpdates = "training/average_updates";

// A copy of `from` with the same config and device.
QatModel clone_model(const Config& cfg, const QatModelImpl& from) {
  QatModel copy = build_model(cfg);
  copy->load_state_tensors(from.state_tensors());
  const auto params = from.parameters();
  if (!params.empty()) copy->to(params.front().device());
  copy->eval();
  return copy;
}
}  // namespace

double average_decay(double ema_decay, int64_t t) {
  return std::min(ema_decay, static_cast<double>(t) / static_cast<double>(t + 9));
}

WeightAverage::WeightAverage(const Config& cfg, QatModel trained)
    : cfg_(cfg), enabled_(cfg.ema_decay > 0), decay_(cfg.ema_decay), trained_(std::move(trained)) {
  restart();
}

void WeightAverage::restart() {
  if (enabled_) average_ = clone_model(cfg_, *trained_);
  updates_ = 0;
}

void WeightAverage::update() {
  if (!enabled_) return;
  torch::NoGradGuard no_grad;
  ++updates_;
  const double d = average_decay(decay_, updates_);
  const auto avg = average_->parameters(), now = trained_->parameters();
  for (size_t i = 0; i < avg.size(); ++i) avg[i].mul_(d).add_(now[i].detach(), 1 - d);
}

void WeightAverage::sync(const Config& cfg, int epoch) {
  if (!enabled_) return;
  torch::NoGradGuard no_grad;
  const auto avg = average_->named_buffers(), now = trained_->named_buffers();
  for (size_t i = 0; i < avg.size(); ++i)
    if (avg[i].key().find("clip") == std::string::npos) avg[i].value().copy_(now[i].value());
  if (epoch < cfg.maxw_update_until_epoch) average_->update_clipping(cfg);
}

void WeightAverage::save(std::map<std::string, torch::Tensor>& out) const {
  for (auto& [name, t] : (enabled_ ? *average_ : *trained_).state_tensors()) out[name] = t;
  if (!enabled_) return;
  for (auto& [name, t] : trained_->state_tensors()) out[kPrefix + name] = t;
  out[kUpdates] = torch::tensor({updates_}, torch::kInt64);
}

void WeightAverage::load(const std::map<std::string, torch::Tensor>& in) {
  std::map<std::string, torch::Tensor> trained;
  for (const auto& [name, t] : in)
    if (name.compare(0, kPrefix.size(), kPrefix) == 0) trained[name.substr(kPrefix.size())] = t;
  const bool averaged = in.count(kUpdates) != 0;
  trained_->load_state_tensors(averaged ? trained : in);
  if (!enabled_) return;
  average_->load_state_tensors(in);  // the average, or (written without one) the trained model
  updates_ = averaged ? in.at(kUpdates).item<int64_t>() : 0;
}

}  // namespace bitnetmcu::train
