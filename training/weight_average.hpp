// An exponential moving average of the latent weights over the optimizer steps (config key
// ema_decay): the model that is evaluated, checkpointed under the usual names and exported.
//
// Why: near the end of a run the test accuracy still moves by about 0.1 pp between epochs at a
// learning rate of ~5e-5, because codes whose latent weight sits on a quantization threshold
// flip back and forth. The average of the recent weights lies where they settle, not where the
// last step happened to leave them.
//
// After update t (1, 2, ...): avg = d * avg + (1 - d) * w with d = min(ema_decay, t / (t + 9)),
// so the first updates follow the weights closely (the average starts as the initial weights).
// Buffers other than the clipping scalars (BatchNorm statistics) are copied from the trained
// model; the average's own clipping scalars are recomputed from its weights (update_clipping)
// before each evaluation while the run still updates clipping (maxw_update_until_epoch), and
// kept after that. python/bitnetmcu_torch/average.py is its twin (tests on the same case).
#pragma once
#include "config.hpp"
#include "models.hpp"

#include <map>
#include <string>

namespace bitnetmcu::train {

// The decay of update number `t` (1-based).
double average_decay(double ema_decay, int64_t t);

class WeightAverage {
 public:
  // Disabled (ema_decay 0): every call is a no-op and model() is the trained model itself.
  WeightAverage(const Config& cfg, QatModel trained);
  bool enabled() const { return enabled_; }
  // A fresh run: the average starts as the trained model's current state.
  void restart();
  // After each optimizer step.
  void update();
  // Before evaluating or saving at the end of `epoch` (0-based): buffers, and clipping scalars
  // while clipping is still updated.
  void sync(const Config& cfg, int epoch);
  // The model to evaluate and to save under model/ and clip/.
  QatModelImpl& model() { return enabled_ ? *average_ : *trained_; }
  int64_t updates() const { return updates_; }

  // Checkpoint entries: the average under model/ and clip/; when enabled, the trained model
  // under training/model/ and training/clip/ and the update count as training/average_updates.
  void save(std::map<std::string, torch::Tensor>& out) const;
  // Restores what save wrote. A checkpoint without training/ entries (written without ema_decay)
  // holds the trained model only: the average restarts from it.
  void load(const std::map<std::string, torch::Tensor>& in);

 private:
  Config cfg_;
  bool enabled_;
  double decay_;
  QatModel trained_, average_{nullptr};
  int64_t updates_ = 0;
};

}  // namespace bitnetmcu::train
