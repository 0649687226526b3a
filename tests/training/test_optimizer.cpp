// The training optimizer: Adam equals torch::optim::Adam; Muon equals its written-out
// definition (Nesterov momentum, Newton-Schulz orthogonalization with plain torch::mm, shape
// scale); which parameters Muon takes; state export for --resume.
#include "test_common.hpp"

#include "training/config.hpp"
#include "training/optimizer.hpp"

#include <torch/torch.h>

#include <cmath>
#include <map>

using namespace bitnetmcu::train;

namespace {
// K. Jordan's Muon, written out plainly as the reference for the optimizer's fast path.
torch::Tensor reference_orthogonalize(torch::Tensor g) {
  const double a = 3.4445, b = -4.7750, c = 2.0315;
  torch::Tensor x = g / (g.norm() + 1e-7);
  const bool tall = x.size(0) > x.size(1);
  if (tall) x = x.t();
  for (int i = 0; i < 5; ++i) {
    const torch::Tensor A = torch::mm(x, x.t());
    const torch::Tensor B = b * A + c * torch::mm(A, A);
    x = a * x + torch::mm(B, x);
  }
  return tall ? x.t() : x;
}

torch::OrderedDict<std::string, torch::Tensor> parameters(const std::vector<std::pair<std::string, std::vector<int64_t>>>& shapes) {
  torch::OrderedDict<std::string, torch::Tensor> out;
  for (const auto& [name, shape] : shapes) out.insert(name, torch::randn(shape).requires_grad_(true));
  return out;
}

void set_gradients(torch::OrderedDict<std::string, torch::Tensor>& params, int step) {
  torch::manual_seed(1000 + step);
  for (auto& p : params) p.value().mutable_grad() = torch::randn_like(p.value());
}
}  // namespace

TEST_CASE("orthogonalize: singular values near 1, singular vectors of the input") {
  torch::manual_seed(3);
  for (const auto& shape : {std::vector<int64_t>{64, 256}, {256, 64}, {64, 64}, {10, 16}}) {
    // Singular values spread over a decade (a random square matrix has some near 0, which
    // five Newton-Schulz steps do not lift; gradients in training are not that degenerate).
    const int64_t k = std::min(shape[0], shape[1]);
    const torch::Tensor q_left = std::get<0>(torch::linalg_qr(torch::randn({shape[0], k})));
    const torch::Tensor q_right = std::get<0>(torch::linalg_qr(torch::randn({shape[1], k})));
    const torch::Tensor g = q_left.mm(torch::diag(torch::logspace(0, -1, k))).mm(q_right.t()) * 7.0;
    const torch::Tensor o = orthogonalize(g);
    REQUIRE(o.sizes() == g.sizes());
    CHECK(torch::allclose(o, reference_orthogonalize(g), 1e-4, 1e-5));
    const auto [u, s, v] = torch::svd(g.to(torch::kFloat64));
    const torch::Tensor so = std::get<1>(torch::svd(o.to(torch::kFloat64)));
    INFO("shape " << shape[0] << "x" << shape[1] << " singular values " << so.min().item<double>() << ".."
                  << so.max().item<double>());
    CHECK(so.min().item<double>() > 0.6);
    CHECK(so.max().item<double>() < 1.25);
    // o = U f(S) V^T: projecting onto the input's singular vectors leaves a diagonal matrix.
    const torch::Tensor d = u.t().mm(o.to(torch::kFloat64)).mm(v);
    CHECK((d - torch::diag_embed(torch::diagonal(d))).abs().max().item<double>() < 1e-3);
  }
}

TEST_CASE("optimizer Adam equals torch::optim::Adam, with a schedule") {
  torch::manual_seed(5);
  auto ours = parameters({{"fc1.weight", {8, 12}}, {"fcl.weight", {3, 8}}});
  std::vector<torch::Tensor> theirs_params;
  for (auto& p : ours) theirs_params.push_back(p.value().detach().clone().requires_grad_(true));
  Config cfg;
  cfg.optimizer = "Adam", cfg.learning_rate = 0.01;
  Optimizer optimizer(ours, cfg);
  CHECK(optimizer.muon_parameters().empty());
  torch::optim::Adam theirs(theirs_params, torch::optim::AdamOptions(0.01));
  const double schedule[] = {1.0, 1.0, 0.5, 0.25, 0.1};
  for (int step = 0; step < 5; ++step) {
    set_gradients(ours, step);
    for (size_t i = 0; i < theirs_params.size(); ++i) theirs_params[i].mutable_grad() = ours[i].value().grad().clone();
    static_cast<torch::optim::AdamOptions&>(theirs.param_groups()[0].options()).lr(0.01 * schedule[step]);
    optimizer.step(schedule[step]);
    theirs.step();
  }
  for (size_t i = 0; i < theirs_params.size(); ++i) CHECK(torch::allclose(ours[i].value(), theirs_params[i], 1e-5, 1e-6));
}

TEST_CASE("optimizer Muon: hidden weights by Muon (written out), classifier and small tensors by Adam") {
  torch::manual_seed(7);
  auto params = parameters({{"fc1.weight", {16, 40}}, {"fc2.weight", {24, 16}}, {"fcl.weight", {10, 24}},
                            {"conv1.weight", {4, 1, 3, 3}}, {"conv2.weight", {16, 1, 3, 3}}});
  std::map<std::string, torch::Tensor> start;
  for (auto& p : params) start[p.key()] = p.value().detach().clone();
  Config cfg;
  cfg.optimizer = "Muon", cfg.muon_learning_rate = 0.02, cfg.learning_rate = 0.001;
  Optimizer optimizer(params, cfg);
  // conv1 has 36 elements: too small for orthogonalization; conv2 (144) flattens to [16, 9].
  CHECK(optimizer.muon_parameters() == std::vector<std::string>{"fc1.weight", "fc2.weight", "conv2.weight"});

  std::map<std::string, torch::Tensor> momentum, expected = start;
  const double schedule[] = {1.0, 0.5, 0.25};
  for (int step = 0; step < 3; ++step) {
    set_gradients(params, step);
    for (const std::string& name : optimizer.muon_parameters()) {
      const torch::Tensor g = params[name].grad().flatten(1);
      momentum[name] = momentum.count(name) ? momentum[name] * 0.95 + g : g.clone();
      const torch::Tensor direction = reference_orthogonalize(g + 0.95 * momentum[name]);
      const double shape_scale = std::sqrt(std::max(1.0, double(g.size(0)) / double(g.size(1))));
      expected[name] = expected[name] - (0.02 * schedule[step] * shape_scale) * direction.view_as(expected[name]);
    }
    optimizer.step(schedule[step]);
  }
  for (const std::string& name : optimizer.muon_parameters()) {
    INFO(name);
    CHECK(torch::allclose(params[name], expected[name], 1e-4, 1e-5));
  }
  // Adam moved the others (its exactness is the test above)
  CHECK_FALSE(torch::equal(params["fcl.weight"], start["fcl.weight"]));
  CHECK_FALSE(torch::equal(params["conv1.weight"], start["conv1.weight"]));

  SECTION("state export: a restored optimizer continues identically") {
    std::map<std::string, torch::Tensor> state;
    optimizer.save(state);
    CHECK(state.count("optim/fc1.weight.momentum") == 1);
    CHECK(state.count("optim/fcl.weight.exp_avg_sq") == 1);
    auto copy = parameters({{"fc1.weight", {16, 40}}, {"fc2.weight", {24, 16}}, {"fcl.weight", {10, 24}},
                            {"conv1.weight", {4, 1, 3, 3}}, {"conv2.weight", {16, 1, 3, 3}}});
    {
      torch::NoGradGuard no_grad;
      for (auto& p : copy) p.value().copy_(params[p.key()]);
    }
    Optimizer restored(copy, cfg);
    REQUIRE(restored.load(state));
    set_gradients(params, 9);
    set_gradients(copy, 9);
    optimizer.step(1.0);
    restored.step(1.0);
    for (auto& p : params) CHECK(torch::equal(p.value(), copy[p.key()]));
    // Adam state does not restore a Muon optimizer (and the reverse): load says so.
    Config adam_cfg = cfg;
    adam_cfg.optimizer = "Adam";
    Optimizer adam(copy, adam_cfg);
    CHECK_FALSE(adam.load(state));
  }
}

TEST_CASE("optimizer Muon: momentum of weights whose gradient stays zero ends at 0, never subnormal") {
  // Dead units give rows of zero gradient; 0.95^n decay would pass through the subnormal range,
  // where the orthogonalization GEMMs slow down (seen: a Binary FC epoch went from 8 s to 55 s).
  torch::manual_seed(11);
  auto params = parameters({{"fc1.weight", {16, 40}}});
  Config cfg;
  cfg.optimizer = "Muon";
  Optimizer optimizer(params, cfg);
  for (int step = 0; step < 1500; ++step) {
    torch::Tensor g = torch::zeros({16, 40});
    g.narrow(0, 0, 8).normal_();  // rows 8..15: gradient only at the first step
    if (step == 0) g.normal_();
    params[0].value().mutable_grad() = g;
    optimizer.step(1.0);
  }
  std::map<std::string, torch::Tensor> state;
  optimizer.save(state);
  const torch::Tensor dead = state.at("optim/fc1.weight.momentum").narrow(0, 8, 8).abs();
  CHECK(dead.max().item<float>() == 0.0f);
  const torch::Tensor all = state.at("optim/fc1.weight.momentum").abs();
  CHECK(((all > 0) & (all < 1.2e-38f)).sum().item<int64_t>() == 0);
}
