// Independent integer emulation of SPEC §6 with LibTorch tensor ops. It shares nothing with the
// engine but the integer weights (decode of the codes): no packing, no kernels, no ShiftNorm
// code. Where it and the engine disagree on any image, one of them is wrong.
#include <torch/torch.h>

#include "emulate.hpp"

namespace bitnetmcu::exporter {
namespace {

torch::Tensor int_weights(const QuantizedTensor& t, torch::ScalarType type) {
  return torch::tensor(std::vector<int64_t>(t.ints.begin(), t.ints.end()), torch::kInt64).view(t.shape).to(type);
}

// bit_length(v) for v >= 0: the number of k in 0..31 with v >= 2^k.
torch::Tensor bit_length(const torch::Tensor& v) {
  auto n = torch::zeros_like(v);
  for (int k = 0; k < 32; ++k) n += v.ge(int64_t{1} << k).to(torch::kInt64);
  return n;
}

// SPEC §6: m = max_o acc; shift = bit_length(max(m,0) >> 7);
// a = acc < 0 ? 0 : min(127, (acc + ((1 << shift) >> 1)) >> shift). acc: int64 [N, n].
torch::Tensor shiftnorm_relu(const torch::Tensor& acc) {
  const auto m = std::get<0>(acc.max(1, /*keepdim=*/true)).clamp_min(0);
  const auto shift = bit_length(torch::div(m, 128, "floor"));
  const auto scale = torch::pow(torch::full_like(shift, 2), shift);   // 1 << shift
  const auto half = torch::div(scale, 2, "floor");                      // (1 << shift) >> 1
  const auto q = torch::div(acc + half, scale, "floor").clamp_max(127);  // >> on acc >= 0
  return torch::where(acc.lt(0), torch::zeros_like(acc), q);
}

// conv 3x3 valid -> ReLU -> >> shift, on exact integers held in float64 (|values| < 2^53).
torch::Tensor conv_relu_shift(const torch::Tensor& x, const torch::Tensor& w, int64_t groups, uint32_t shift) {
  const std::vector<int64_t> ones{1, 1}, zeros{0, 0};  // stride, padding (valid), dilation
  const auto y = torch::conv2d(x, w, torch::Tensor(), ones, zeros, ones, groups).clamp_min(0);
  return torch::floor(y / double(int64_t{1} << shift));
}

}  // namespace

Emulation emulate_integer_model(const std::vector<QuantizedTensor>& tensors, const torch::Tensor& images,
                                uint32_t cnn_shift) {
  torch::NoGradGuard no_grad;
  auto find = [&](const std::string& name) -> const QuantizedTensor* {
    for (const auto& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  };
  const int64_t n = images.size(0);
  torch::Tensor x = images.to(torch::kInt64).view({n, -1});
  if (const QuantizedTensor* conv1 = find("conv1")) {
    const int64_t channels = conv1->shape[0];
    const auto side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(x.size(1)))));
    auto plane = x.to(torch::kDouble).view({n, 1, side, side});
    plane = conv_relu_shift(plane, int_weights(*conv1, torch::kDouble), 1, cnn_shift);
    plane = conv_relu_shift(plane, int_weights(*find("conv2"), torch::kDouble), channels, cnn_shift);
    plane = torch::max_pool2d(plane, 2);
    plane = conv_relu_shift(plane, int_weights(*find("conv3"), torch::kDouble), channels, cnn_shift);
    plane = torch::max_pool2d(plane, 2);
    x = shiftnorm_relu(plane.flatten(1).to(torch::kInt64));  // [N, C*2*2], channel-major
  }
  std::vector<const QuantizedTensor*> dense{find("fc1"), find("fc2"), find("fc3"), find("fcl")};
  dense.erase(std::remove(dense.begin(), dense.end(), nullptr), dense.end());
  torch::Tensor acc;
  for (size_t l = 0; l < dense.size(); ++l) {
    acc = torch::matmul(x, int_weights(*dense[l], torch::kInt64).t());
    if (l + 1 < dense.size()) x = shiftnorm_relu(acc);
  }
  Emulation e;
  e.logits = acc;
  e.predictions = acc.argmax(1);  // first maximum, as the engine
  return e;
}

}  // namespace bitnetmcu::exporter
