// The training loop's optimizer: Adam, or Muon for the hidden layers' weight matrices with Adam
// for everything else (the classifier, small tensors). State is exportable for --resume.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace bitnetmcu::train {

struct Config;

// Newton-Schulz (quintic, 5 steps) approximation of U V^T for G = U S V^T: a matrix of the same
// shape whose singular values are all close to 1 (0.7..1.2). Muon's update direction.
torch::Tensor orthogonalize(const torch::Tensor& g, int steps = 5);

class Optimizer {
 public:
  // cfg.optimizer "Adam": torch.optim.Adam (betas 0.9/0.999, eps 1e-8, no weight decay) on all
  // parameters. "Muon": Muon (momentum 0.95, Nesterov, rate cfg.muon_learning_rate) on every
  // weight of at least 2 dimensions and 65 elements outside the classifier "fcl", Adam on the rest.
  Optimizer(const torch::OrderedDict<std::string, torch::Tensor>& params, const Config& cfg);
  void zero_grad();
  // schedule: the learning-rate schedule's factor for this epoch (1 at the start of a cosine).
  void step(double schedule);
  void save(std::map<std::string, torch::Tensor>& out) const;
  // false (and the state left at zero) when the tensors hold no matching state.
  bool load(const std::map<std::string, torch::Tensor>& in);
  std::vector<std::string> muon_parameters() const;  // in parameter order

 private:
  struct Slot {
    std::string name;
    torch::Tensor param, first, second;  // Adam: exp_avg, exp_avg_sq; Muon: momentum, undefined
    bool muon;
  };
  std::vector<Slot> slots_;
  double adam_rate_, muon_rate_;
  int64_t step_ = 0;
};

}  // namespace bitnetmcu::train
