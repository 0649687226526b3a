#include "optimizer.hpp"

#include "config.hpp"
#include "qat.hpp"

#include <algorithm>
#include <cmath>

namespace bitnetmcu::train {
namespace {
constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kEps = 1e-8;
constexpr double kMuonMomentum = 0.95;
constexpr int64_t kMuonMinElements = 65;
constexpr float kSubnormalFloor = 1e-30f;  // well above FLT_MIN (1.2e-38), far below any real step  // smaller tensors gain nothing from orthogonalization
}  // namespace

torch::Tensor orthogonalize(const torch::Tensor& g, int steps) {
  // Coefficients of K. Jordan's Muon: chosen for a fast rise of small singular values, not for
  // exact convergence to 1.
  constexpr double a = 3.4445, b = -4.7750, c = 2.0315;
  torch::Tensor x = g.to(torch::kFloat32) / (g.norm() + 1e-7);
  const bool wide = x.size(0) <= x.size(1);
  if (!wide) x = x.t();  // iterate on the smaller Gram matrix
  for (int i = 0; i < steps; ++i) {
    // x <- a x + (b G + c G G) x with G = x x^T; G and b G + c G G are symmetric, so every
    // product is an "a times b transposed" (oneDNN on CPU, see matmul_nt).
    const torch::Tensor gram = matmul_nt(x, x);
    const torch::Tensor poly = matmul_nt(gram, gram).mul_(c).add_(gram, b);
    x = matmul_nt(poly, x.t().contiguous()).add_(x, a);
  }
  return wide ? x : x.t();
}

Optimizer::Optimizer(const torch::OrderedDict<std::string, torch::Tensor>& params, const Config& cfg)
    : adam_rate_(cfg.learning_rate), muon_rate_(cfg.muon_learning_rate) {
  const bool use_muon = cfg.optimizer == "Muon";
  for (const auto& p : params) {
    const torch::Tensor& t = p.value();
    const bool classifier = p.key().rfind("fcl", 0) == 0;
    const bool muon = use_muon && !classifier && t.dim() >= 2 && t.numel() >= kMuonMinElements;
    slots_.push_back({p.key(), t, torch::zeros_like(t), muon ? torch::Tensor() : torch::zeros_like(t), muon});
  }
}

std::vector<std::string> Optimizer::muon_parameters() const {
  std::vector<std::string> names;
  for (const Slot& s : slots_)
    if (s.muon) names.push_back(s.name);
  return names;
}

void Optimizer::zero_grad() {
  for (Slot& s : slots_)
    if (s.param.grad().defined()) s.param.mutable_grad().zero_();
}

void Optimizer::step(double schedule) {
  torch::NoGradGuard no_grad;
  ++step_;
  const double bc1 = 1 - std::pow(kBeta1, static_cast<double>(step_));
  const double bc2_sqrt = std::sqrt(1 - std::pow(kBeta2, static_cast<double>(step_)));
  for (Slot& s : slots_) {
    const torch::Tensor& g = s.param.grad();
    if (!g.defined()) continue;
    if (s.muon) {
      // Nesterov momentum, orthogonalized; scaled so that tall matrices move as far per element.
      s.first.mul_(kMuonMomentum).add_(g);
      // Where the gradient stays zero (dead units) the momentum decays into the subnormal range,
      // where the GEMMs below slow down many times over (a Binary FC epoch: 8 s -> 55 s): flush it.
      s.first.masked_fill_(s.first.abs() < kSubnormalFloor, 0);
      const torch::Tensor rows = g.add(s.first, kMuonMomentum).flatten(1);
      const double shape_scale = std::sqrt(std::max(1.0, static_cast<double>(rows.size(0)) / static_cast<double>(rows.size(1))));
      s.param.add_(orthogonalize(rows).view_as(s.param), -muon_rate_ * schedule * shape_scale);
    } else {
      s.first.mul_(kBeta1).add_(g, 1 - kBeta1);
      s.second.mul_(kBeta2).addcmul_(g, g, 1 - kBeta2);
      const torch::Tensor denom = (s.second.sqrt() / bc2_sqrt).add_(kEps);
      s.param.addcdiv_(s.first, denom, -adam_rate_ * schedule / bc1);
    }
  }
}

void Optimizer::save(std::map<std::string, torch::Tensor>& out) const {
  out["optim/step"] = torch::tensor({step_}, torch::kInt64);
  for (const Slot& s : slots_) {
    if (s.muon) {
      out["optim/" + s.name + ".momentum"] = s.first.detach().cpu().clone();
    } else {
      out["optim/" + s.name + ".exp_avg"] = s.first.detach().cpu().clone();
      out["optim/" + s.name + ".exp_avg_sq"] = s.second.detach().cpu().clone();
    }
  }
}

bool Optimizer::load(const std::map<std::string, torch::Tensor>& in) {
  auto step = in.find("optim/step");
  if (step == in.end()) return false;
  // Every tensor is looked up (and its shape checked) before any is copied: all or nothing.
  std::vector<std::pair<torch::Tensor*, const torch::Tensor*>> copies;
  auto want = [&](const std::string& key, torch::Tensor& into) {
    auto it = in.find(key);
    if (it == in.end() || it->second.sizes() != into.sizes()) return false;
    copies.emplace_back(&into, &it->second);
    return true;
  };
  for (Slot& s : slots_) {
    const bool found = s.muon ? want("optim/" + s.name + ".momentum", s.first)
                              : want("optim/" + s.name + ".exp_avg", s.first) &&
                                    want("optim/" + s.name + ".exp_avg_sq", s.second);
    if (!found) return false;
  }
  torch::NoGradGuard no_grad;
  for (auto& [into, from] : copies) into->copy_(*from);
  step_ = step->second.item<int64_t>();
  return true;
}

}  // namespace bitnetmcu::train
