// Quantization-aware training building blocks (SPEC §4): weight quantizers that produce exactly
// the engine's codes (schemes.hpp), clipping-scalar algorithms, activation quantization,
// norms, and the BitLinear / BitConv2d layers with straight-through estimators.
//
// The clipping tensor `clip` of a layer ([1] per tensor or [out] per output row) means, by the
// scheme's ScaleRule:
//   Clip         : s from octav/prop;  k = clip_numerator / s,  v = w * k
//   InvMeanAbs   : mean|w| (Ternary);  k = 1 / clip,           v = w * k
//   MeanCentered : mean(w) (Binary);                            v = w - clip
// and the engine's encode(v) gives the code. It is stored in checkpoints as clip/<layer>.
#pragma once
#include "config.hpp"

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <optional>
#include <string>

namespace bitnetmcu::train {

// a [M,K] times b [N,K] transposed (no gradient), through oneDNN's GEMM where available:
// Debian's LibTorch sends torch::mm to the reference netlib BLAS.
torch::Tensor matmul_nt(const torch::Tensor& a, const torch::Tensor& b);

// ---- weight quantizers (the engine's traits applied to tensors; bitnetmcu/level_table.hpp) --

// v: the scaled weights the engine's encode() takes (see the ScaleRule table above).
torch::Tensor scaled_weights(const torch::Tensor& w, SchemeId scheme, const torch::Tensor& clip);
// encode() on every element: uint8 codes.
torch::Tensor codes_from_scaled(const torch::Tensor& v, SchemeId scheme);
// value(code) on every element: float level in scaled units.
torch::Tensor code_values(const torch::Tensor& codes, SchemeId scheme);
// value(encode(v)) without the codes (what the training forward pass uses).
torch::Tensor quantized_levels(const torch::Tensor& v, SchemeId scheme);
// The codes the exporter packs: codes_from_scaled(scaled_weights(w, scheme, clip)).
torch::Tensor quantize_codes(const torch::Tensor& w, SchemeId scheme, const torch::Tensor& clip);
// The float weights of the training forward pass (w_q of SPEC §4), no gradient attached.
torch::Tensor fake_quantized_weights(const torch::Tensor& w, SchemeId scheme, const torch::Tensor& clip);

// ---- clipping scalars ------------------------------------------------------------------------

// For Binary/Ternary: the statistic their ScaleRule needs (mean(w) / mean|w|), per tensor ([1])
// or per output row ([out]). For Clip schemes this is not defined (throws).
torch::Tensor statistic_clip(const torch::Tensor& w, SchemeId scheme, bool per_output);
// OCTAV fixed-point iteration (10 steps) minimizing 4^-bpw/3 s^2 #{|w|<=s} + sum_{|w|>s}(|w|-s)^2.
// `start`: previous s (same shape as the result) or an undefined tensor for 0.25 mean|w|.
torch::Tensor octav_clip(const torch::Tensor& w, double bits_per_weight, bool per_output,
                         const torch::Tensor& start = {});
// mean|w| / quantscale (per tensor) or max_row|w| / quantscale (per output).
torch::Tensor prop_clip(const torch::Tensor& w, double quantscale, bool per_output);
// The MSE objective octav minimizes, for tests and diagnostics (w flattened, scalar s).
double octav_objective(const torch::Tensor& w, double s, double bits_per_weight);

// ---- activations and norms ----------------------------------------------------------------------

// Symmetric 8-bit per row (dim 0 indexes rows; all other dims are one row), STE gradient.
torch::Tensor quantize_activations_ste(const torch::Tensor& x);
// quantize_activations_ste(relu(x)) as one op: the same values, relu's gradient.
torch::Tensor relu_quantize_activations_ste(const torch::Tensor& x);
// 2x2 max pooling, stride 2 (as torch::max_pool2d, faster on CPU).
torch::Tensor max_pool_2x2(const torch::Tensor& x);
// max_pool_2x2(relu(x)) as one op: the same values and gradient.
torch::Tensor relu_max_pool_2x2(const torch::Tensor& x);
// Shannon entropy (bits) of the code histogram of a layer.
double code_entropy_bits(const torch::Tensor& codes);

// ---- layers ---------------------------------------------------------------------------------

// A layer with quantized weights: latent weight, scheme, clipping tensor. Subclasses add forward().
class QuantLayerImpl : public torch::nn::Module {
 public:
  QuantLayerImpl(std::string name, std::optional<SchemeId> scheme, bool per_output,
                 std::vector<int64_t> weight_shape);
  const std::string& layer_name() const { return name_; }
  std::optional<SchemeId> scheme() const { return scheme_; }
  const torch::Tensor& latent_weight() const { return weight_; }
  // The clip tensor that, with the current weights, gives the codes (see the table on top):
  // [1] or [out]; undefined for float (None) layers.
  torch::Tensor clip() const;
  void set_clip(const torch::Tensor& clip);
  // Octav/prop for Clip schemes (called once per epoch); Binary/Ternary need no update.
  void update_clip(const Config& cfg);
  // Codes of the current weights (uint8, weight's shape); requires a quantized layer.
  torch::Tensor codes() const;

 protected:
  // The quantized weights w_q of the forward pass (no gradient; the layers route it to the
  // latent weights: straight-through estimator); requires a quantized layer.
  torch::Tensor quantized_weight() const;

  std::string name_;
  std::optional<SchemeId> scheme_;
  bool per_output_;
  torch::Tensor weight_;
  torch::Tensor clip_;  // Clip schemes: s; others: unused (computed from the weights)
};

// normalize -> 8-bit activations -> quantized linear, no bias (SPEC §3, §4).
class BitLinearImpl : public QuantLayerImpl {
 public:
  BitLinearImpl(std::string name, int64_t in, int64_t out, std::optional<SchemeId> scheme,
                const Config& cfg);
  torch::Tensor forward(const torch::Tensor& x);
  // The configured norm (NormType) on its own.
  torch::Tensor normalize(const torch::Tensor& x);

 private:
  std::string norm_type_;
  torch::nn::BatchNorm1d batch_norm_{nullptr};
  torch::nn::LayerNorm layer_norm_{nullptr};
};
TORCH_MODULE(BitLinear);

// 8-bit activations (per sample) -> quantized 3x3 valid convolution, no bias, no norm.
class BitConv2dImpl : public QuantLayerImpl {
 public:
  BitConv2dImpl(std::string name, int64_t in, int64_t out, int64_t groups,
                std::optional<SchemeId> scheme, const Config& cfg);
  torch::Tensor forward(const torch::Tensor& x);
  // forward(relu(pre)), with relu fused into the input quantization (CNN block, models.cpp).
  torch::Tensor forward_relu(const torch::Tensor& pre);

 private:
  int64_t groups_;
};
TORCH_MODULE(BitConv2d);

}  // namespace bitnetmcu::train
