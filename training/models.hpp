// FCMNIST and CNNMNIST (SPEC §3) built from the QAT layers, with the checkpoint naming of
// docs/checkpoint-format.md: model/<layer>.weight, model/<layer>.norm.*, clip/<layer>.
#pragma once
#include "config.hpp"
#include "qat.hpp"

#include <map>
#include <string>
#include <vector>

namespace bitnetmcu::train {

class QatModelImpl : public torch::nn::Module {
 public:
  explicit QatModelImpl(const Config& cfg);
  // x: [N,1,S,S] images (CNN) or [N, inputs] -> logits [N, num_classes].
  torch::Tensor forward(torch::Tensor x);
  // The same, and *sparsity = the mean of the measure (activation_sparsity_measure) of every ReLU
  // output that feeds a dense layer: the term config key activation_sparsity weighs. (Weighting
  // each layer's measure by its consumer's weight count, closer to the engine's cost, lost more
  // accuracy for the same instructions: docs/engine.md.)
  torch::Tensor forward(torch::Tensor x, torch::Tensor* sparsity);
  // Quantized (or float) layers in forward order: conv1..3 (CNN), fc1, fc2, [fc3], fcl.
  std::vector<QuantLayerImpl*> layers() const;
  QuantLayerImpl& layer(const std::string& name) const;
  // Octav/prop update of every layer's clipping scalar (once per epoch).
  void update_clipping(const Config& cfg);
  // "model/<param or buffer>" and "clip/<layer>" tensors, on the CPU.
  std::map<std::string, torch::Tensor> state_tensors() const;
  // Loads what state_tensors() wrote; throws naming any missing or mis-shaped entry.
  void load_state_tensors(const std::map<std::string, torch::Tensor>& tensors);

 private:
  bool cnn_;
  std::vector<BitConv2d> convs_;
  std::vector<BitLinear> dense_;
};
TORCH_MODULE(QatModel);

// (sum_j h_j)^2 / (n sum_j h_j^2) per row of h [N, n] (h >= 0, ReLU outputs), averaged over rows:
// 1 when all n are equal, k/n when k equal values are nonzero, 0 for an all-zero row. Scale-free
// (every dense layer normalizes its input, so shrinking activations changes nothing), so only
// fewer nonzero values lower it. python/bitnetmcu_torch/models.py has the twin.
torch::Tensor activation_sparsity_measure(const torch::Tensor& h);

QatModel build_model(const Config& cfg);
// A model with the config, weights and clips of a checkpoint (e.g. for --eval or export).
struct Checkpoint;
QatModel load_model_from_checkpoint(const Checkpoint& ckpt, Config* config_out = nullptr);

}  // namespace bitnetmcu::train
