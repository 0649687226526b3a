#include "models.hpp"

#include "checkpoint.hpp"

#include <bitnetmcu/kernels/conv.hpp>
#include <torch/torch.h>

namespace bitnetmcu::train {

QatModelImpl::QatModelImpl(const Config& cfg) : cnn_(cfg.is_cnn()) {
  int64_t features = cfg.num_inputs();
  if (cnn_) {
    const int64_t c = cfg.cnn_width;
    convs_.push_back(register_module("conv1", BitConv2d("conv1", 1, c, 1, cfg.layer_scheme("conv1"), cfg)));
    convs_.push_back(register_module("conv2", BitConv2d("conv2", c, c, c, cfg.layer_scheme("conv2"), cfg)));
    convs_.push_back(register_module("conv3", BitConv2d("conv3", c, c, c, cfg.layer_scheme("conv3"), cfg)));
    const int64_t side = bitnetmcu::cnn_output_side(static_cast<uint32_t>(cfg.input_side));  // 16 -> 14 -> 12 -> pool 6 -> 4 -> pool 2
    features = c * side * side;
  }
  std::vector<std::pair<std::string, int64_t>> widths = {{"fc1", cfg.network_width1},
                                                         {"fc2", cfg.network_width2}};
  if (cfg.network_width3 > 0) widths.push_back({"fc3", cfg.network_width3});
  widths.push_back({"fcl", cfg.num_classes()});
  for (const auto& [name, out] : widths) {
    dense_.push_back(register_module(name, BitLinear(name, features, out, cfg.layer_scheme(name), cfg)));
    features = out;
  }
}

torch::Tensor QatModelImpl::forward(torch::Tensor x) { return forward(x, nullptr); }

torch::Tensor activation_sparsity_measure(const torch::Tensor& h) {
  const torch::Tensor sum = h.sum(-1), sum_sq = h.square().sum(-1);
  // an all-zero row: 0 (and no NaN in the gradient)
  return (sum.square() / (sum_sq * static_cast<double>(h.size(-1))).clamp_min(1e-12)).mean();
}

torch::Tensor QatModelImpl::forward(torch::Tensor x, torch::Tensor* sparsity) {
  std::vector<torch::Tensor> measures;
  if (cnn_) {
    // conv1, ReLU, conv2, ReLU, pool, conv3, ReLU, pool: each ReLU fused into the next op (the
    // same values and gradients; one pass less over each 6.4 MB activation and its gradient)
    x = convs_[1]->forward_relu(convs_[0]->forward(x));
    x = relu_max_pool_2x2(x);
    x = relu_max_pool_2x2(convs_[2]->forward(x));
  }
  x = x.flatten(1);
  if (sparsity && cnn_) measures.push_back(activation_sparsity_measure(x));
  for (size_t i = 0; i + 1 < dense_.size(); ++i) {
    x = torch::relu(dense_[i]->forward(x));
    if (sparsity) measures.push_back(activation_sparsity_measure(x));
  }
  if (sparsity) *sparsity = torch::stack(measures).mean();
  return dense_.back()->forward(x);
}

std::vector<QuantLayerImpl*> QatModelImpl::layers() const {
  std::vector<QuantLayerImpl*> out;
  for (const auto& c : convs_) out.push_back(c.ptr().get());
  for (const auto& d : dense_) out.push_back(d.ptr().get());
  return out;
}

QuantLayerImpl& QatModelImpl::layer(const std::string& name) const {
  for (QuantLayerImpl* l : layers())
    if (l->layer_name() == name) return *l;
  throw std::runtime_error("model has no layer named '" + name + "'");
}

void QatModelImpl::update_clipping(const Config& cfg) {
  for (QuantLayerImpl* l : layers()) l->update_clip(cfg);
}

namespace {
bool is_clip_buffer(const std::string& key) { return key.size() > 5 && key.compare(key.size() - 5, 5, ".clip") == 0; }
}  // namespace

std::map<std::string, torch::Tensor> QatModelImpl::state_tensors() const {
  std::map<std::string, torch::Tensor> out;
  auto keep = [](const torch::Tensor& t) {
    const torch::Tensor c = t.detach().to(torch::kCPU);
    return c.is_floating_point() ? c.to(torch::kFloat32).clone() : c.to(torch::kInt64).clone();
  };
  for (const auto& p : named_parameters()) out["model/" + p.key()] = keep(p.value());
  for (const auto& b : named_buffers())
    if (!is_clip_buffer(b.key())) out["model/" + b.key()] = keep(b.value());
  for (QuantLayerImpl* l : layers())
    if (l->scheme()) out["clip/" + l->layer_name()] = keep(l->clip());
  return out;
}

void QatModelImpl::load_state_tensors(const std::map<std::string, torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  auto fetch = [&](const std::string& name, const torch::Tensor& like) {
    auto it = tensors.find(name);
    if (it == tensors.end()) throw std::runtime_error("checkpoint has no entry '" + name + "'");
    if (it->second.sizes() != like.sizes())
      throw std::runtime_error("checkpoint entry '" + name + "' has shape " + c10::str(it->second.sizes()) +
                               ", the model expects " + c10::str(like.sizes()));
    return it->second.to(like.device(), like.scalar_type());
  };
  for (auto& p : named_parameters()) p.value().copy_(fetch("model/" + p.key(), p.value()));
  for (auto& b : named_buffers())
    if (!is_clip_buffer(b.key())) b.value().copy_(fetch("model/" + b.key(), b.value()));
  for (QuantLayerImpl* l : layers()) {
    auto it = tensors.find("clip/" + l->layer_name());
    if (l->scheme() && it == tensors.end())
      throw std::runtime_error("checkpoint has no entry 'clip/" + l->layer_name() + "'");
    if (l->scheme()) l->set_clip(it->second);
  }
}

QatModel build_model(const Config& cfg) { return QatModel(cfg); }

QatModel load_model_from_checkpoint(const Checkpoint& ckpt, Config* config_out) {
  const Config cfg = config_from_yaml_text(ckpt.config_yaml, "config entry of the checkpoint");
  QatModel model = build_model(cfg);
  model->load_state_tensors(ckpt.tensors);
  if (config_out) *config_out = cfg;
  return model;
}

}  // namespace bitnetmcu::train
