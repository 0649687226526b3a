#include "qat.hpp"

#include <torch/torch.h>

#include <cmath>

namespace bitnetmcu::train {
namespace {

struct SchemeInfo {
  ScaleRule rule;
  float clip_numerator;
  double bits_per_weight;
};
SchemeInfo info(SchemeId id) {
  SchemeInfo i{};
  visit_scheme(id, [&](auto s) {
    using S = decltype(s);
    i = {S::scale_rule, S::clip_numerator, S::bits_per_weight};
  });
  return i;
}

// [1] -> 0-dim scalar; [out] -> [out,1,...] matching w's rank.
torch::Tensor broadcast_clip(const torch::Tensor& clip, const torch::Tensor& w) {
  if (clip.numel() == 1) return clip.reshape({});
  TORCH_CHECK(clip.numel() == w.size(0), "clip has ", clip.numel(), " entries, weight has ", w.size(0),
              " rows");
  std::vector<int64_t> shape(static_cast<size_t>(w.dim()), 1);
  shape[0] = w.size(0);
  return clip.reshape(shape);
}

// Integer levels of the symmetric schemes (half_levels) and two's complement ranges.
int32_t half_levels(SchemeId id) { return id == SchemeId::Sym2 ? Sym2::half_levels : Sym4::half_levels; }
std::pair<int32_t, int32_t> int_range(SchemeId id) {
  return id == SchemeId::Int4 ? std::make_pair(Int4::lo, Int4::hi) : std::make_pair(Int8::lo, Int8::hi);
}

// NF4 decision boundaries computed in float exactly as NF4::encode does.
torch::Tensor nf4_midpoints() {
  std::vector<float> mid(15);
  for (int c = 0; c < 15; ++c) mid[c] = 0.5f * (NF4::levels[c] + NF4::levels[c + 1]);
  return torch::tensor(mid, torch::kFloat32);
}
torch::Tensor nf4_levels() {
  return torch::tensor(std::vector<float>(NF4::levels, NF4::levels + 16), torch::kFloat32);
}
torch::Tensor nf4_index(const torch::Tensor& v) {
  static const torch::Tensor mid = nf4_midpoints();
  // right=true: a value equal to a boundary counts as above it (NF4::encode uses >=).
  return torch::bucketize(v, mid.to(v.device()), /*out_int32=*/false, /*right=*/true);
}

// FP130 exponent: clamp(floor(log2|v|), 0, 7), exact at powers of two (frexp, not log2).
torch::Tensor fp130_exponent(const torch::Tensor& v) {
  const torch::Tensor a = v.abs();
  torch::Tensor e = std::get<1>(torch::frexp(a)).to(torch::kInt32) - 1;
  e = e.clamp(0, 7);
  e = torch::where(a >= 128.0f, torch::full_like(e, 7), e);  // also +inf
  return torch::where(torch::isnan(v), torch::zeros_like(e), e);
}

}  // namespace

// ---- quantizers -------------------------------------------------------------------------------

torch::Tensor scaled_weights(const torch::Tensor& w, SchemeId scheme, const torch::Tensor& clip) {
  const SchemeInfo si = info(scheme);
  const torch::Tensor c = broadcast_clip(clip.to(w.device(), torch::kFloat32), w);
  if (si.rule == ScaleRule::MeanCentered) return w - c;
  return w * (si.clip_numerator / c);
}

torch::Tensor codes_from_scaled(const torch::Tensor& v, SchemeId scheme) {
  torch::Tensor code;
  switch (scheme) {
    case SchemeId::Binary: code = (v >= 0.0f); break;
    case SchemeId::Ternary: {
      const torch::Tensor q = torch::round(v).clamp(-1, 1).to(torch::kInt32);
      code = torch::where(q > 0, torch::zeros_like(q), torch::where(q < 0, torch::ones_like(q), torch::full_like(q, 2)));
      break;
    }
    case SchemeId::Sym2:
    case SchemeId::Sym4: {
      const int32_t h = half_levels(scheme);
      const torch::Tensor q = torch::round(v - 0.5f).clamp(-h, h - 1).to(torch::kInt32);
      code = torch::where(q >= 0, q, h + (-q - 1));
      break;
    }
    case SchemeId::Int4:
    case SchemeId::Int8: {
      const auto [lo, hi] = int_range(scheme);
      code = torch::bitwise_and(torch::round(v).clamp(lo, hi).to(torch::kInt32), hi - lo);
      break;
    }
    case SchemeId::FP130: code = fp130_exponent(v) + torch::where(v < 0.0f, 8, 0).to(torch::kInt32); break;
    case SchemeId::NF4: code = nf4_index(v); break;
  }
  return code.to(torch::kUInt8);
}

torch::Tensor code_values(const torch::Tensor& codes, SchemeId scheme) {
  std::vector<float> table(256, 0.0f);
  visit_scheme(scheme, [&](auto s) {
    using S = decltype(s);
    for (int c = 0; c < 256; ++c) table[c] = S::value(static_cast<uint8_t>(c));
  });
  const torch::Tensor t = torch::tensor(table, torch::kFloat32).to(codes.device());
  return t.index_select(0, codes.reshape(-1).to(torch::kInt64)).reshape(codes.sizes());
}

torch::Tensor quantized_levels(const torch::Tensor& v, SchemeId scheme) {
  switch (scheme) {
    case SchemeId::Binary: return torch::where(v >= 0.0f, 1.0f, -1.0f).to(v.scalar_type());
    case SchemeId::Ternary: return torch::round(v).clamp(-1, 1);
    case SchemeId::Sym2:
    case SchemeId::Sym4: {
      const int32_t h = half_levels(scheme);
      return torch::round(v - 0.5f).clamp(-h, h - 1) + 0.5f;
    }
    case SchemeId::Int4:
    case SchemeId::Int8: {
      const auto [lo, hi] = int_range(scheme);
      return torch::round(v).clamp(lo, hi);
    }
    case SchemeId::FP130:
      return torch::exp2(fp130_exponent(v).to(v.scalar_type())) * torch::where(v < 0.0f, -1.0f, 1.0f);
    case SchemeId::NF4: {
      static const torch::Tensor levels = nf4_levels();
      return levels.to(v.device()).index_select(0, nf4_index(v).reshape(-1)).reshape(v.sizes());
    }
  }
  throw std::invalid_argument("unknown scheme");
}

torch::Tensor quantize_codes(const torch::Tensor& w, SchemeId scheme, const torch::Tensor& clip) {
  torch::NoGradGuard no_grad;
  return codes_from_scaled(scaled_weights(w.to(torch::kFloat32), scheme, clip), scheme);
}

torch::Tensor fake_quantized_weights(const torch::Tensor& w, SchemeId scheme, const torch::Tensor& clip) {
  torch::NoGradGuard no_grad;
  const SchemeInfo si = info(scheme);
  const torch::Tensor levels = quantized_levels(scaled_weights(w, scheme, clip), scheme);
  if (si.rule == ScaleRule::MeanCentered) {
    // Binary: sign(w - mean) scaled by mean|w| (per tensor or per row, like the clip).
    const torch::Tensor mag = clip.numel() == 1 ? w.abs().mean() : w.abs().flatten(1).mean(1);
    return levels * broadcast_clip(mag, w);
  }
  return levels / (si.clip_numerator / broadcast_clip(clip.to(w.device()), w));
}

// ---- clipping ---------------------------------------------------------------------------------

torch::Tensor statistic_clip(const torch::Tensor& w, SchemeId scheme, bool per_output) {
  torch::NoGradGuard no_grad;
  const SchemeInfo si = info(scheme);
  const torch::Tensor rows = per_output ? w.flatten(1) : w.reshape({1, -1});
  if (si.rule == ScaleRule::MeanCentered) return rows.mean(1);
  if (si.rule == ScaleRule::InvMeanAbs) return rows.abs().mean(1).clamp_min(1e-8f);
  throw std::invalid_argument(std::string("statistic_clip: ") + scheme_name(scheme) +
                              " uses an octav/prop clipping scalar");
}

torch::Tensor octav_clip(const torch::Tensor& w, double bits_per_weight, bool per_output,
                         const torch::Tensor& start) {
  torch::NoGradGuard no_grad;
  const torch::Tensor a = (per_output ? w.flatten(1) : w.reshape({1, -1})).abs().to(torch::kFloat64);
  const double under_weight = std::pow(4.0, -bits_per_weight) / 3.0;
  const double n = static_cast<double>(a.size(1));
  torch::Tensor s = start.defined() && start.numel() == a.size(0)
                        ? start.to(a.device(), torch::kFloat64).reshape({-1, 1})
                        : 0.25 * a.mean(1, true);
  for (int it = 0; it < 10; ++it) {
    const torch::Tensor over = a > s;
    const torch::Tensor n_over = over.sum(1, true).to(torch::kFloat64);
    const torch::Tensor sum_over = (a * over).sum(1, true);
    s = sum_over / (under_weight * (n - n_over) + n_over);
    s = torch::where(n_over > 0, s, a.mean(1, true));  // all |w| <= s: restart from the mean
  }
  return s.clamp_min(1e-8).reshape({-1}).to(torch::kFloat32);
}

torch::Tensor prop_clip(const torch::Tensor& w, double quantscale, bool per_output) {
  torch::NoGradGuard no_grad;
  const torch::Tensor a = w.abs();
  const torch::Tensor s = per_output ? std::get<0>(a.flatten(1).max(1)) : a.mean().reshape({1});
  return (s / quantscale).clamp_min(1e-8f).to(torch::kFloat32);
}

double octav_objective(const torch::Tensor& w, double s, double bits_per_weight) {
  const torch::Tensor a = w.abs().to(torch::kFloat64).reshape({-1});
  const torch::Tensor over = a > s;
  const double under = static_cast<double>((~over).sum().item<int64_t>());
  const double clipped = ((a - s).pow(2) * over).sum().item<double>();
  return std::pow(4.0, -bits_per_weight) / 3.0 * s * s * under + clipped;
}

// ---- activations ------------------------------------------------------------------------------

torch::Tensor quantize_activations_ste(const torch::Tensor& x) {
  const torch::Tensor xd = x.detach();
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[0] = x.size(0);
  const torch::Tensor scale = 127.0f / xd.abs().flatten(1).amax(1).clamp_min(1e-5f).reshape(shape);
  const torch::Tensor q = torch::round(xd * scale).clamp_(-128, 127).div_(scale);
  return x + (q - xd);
}

double code_entropy_bits(const torch::Tensor& codes) {
  const torch::Tensor counts = torch::bincount(codes.reshape(-1).to(torch::kInt64), {}, 256).to(torch::kFloat64);
  const torch::Tensor p = counts.masked_select(counts > 0) / counts.sum();
  return -(p * torch::log2(p)).sum().item<double>();
}

// ---- layers ----------------------------------------------------------------------------------

QuantLayerImpl::QuantLayerImpl(std::string name, std::optional<SchemeId> scheme, bool per_output,
                               std::vector<int64_t> weight_shape)
    : name_(std::move(name)), scheme_(scheme), per_output_(per_output) {
  weight_ = register_parameter("weight", torch::empty(weight_shape));
  torch::nn::init::kaiming_uniform_(weight_, std::sqrt(5.0));  // torch's Linear/Conv default
  clip_ = register_buffer("clip", torch::zeros({per_output ? weight_shape[0] : 1}));
}

torch::Tensor QuantLayerImpl::clip() const {
  if (!scheme_) return {};
  if (info(*scheme_).rule == ScaleRule::Clip) return clip_;
  return statistic_clip(weight_.detach(), *scheme_, per_output_);
}

void QuantLayerImpl::set_clip(const torch::Tensor& clip) {
  torch::NoGradGuard no_grad;
  if (clip.numel() != clip_.numel())
    throw std::runtime_error("layer " + name_ + ": clip has " + std::to_string(clip.numel()) +
                             " values, expected " + std::to_string(clip_.numel()) +
                             " (WScale differs from the one it was trained with?)");
  clip_.copy_(clip.reshape(clip_.sizes()));
}

void QuantLayerImpl::update_clip(const Config& cfg) {
  if (!scheme_ || info(*scheme_).rule != ScaleRule::Clip) return;
  torch::NoGradGuard no_grad;
  const torch::Tensor w = weight_.detach();
  const bool started = clip_.min().item<float>() > 0;
  clip_.copy_(cfg.maxw_algo == "octav"
                  ? octav_clip(w, info(*scheme_).bits_per_weight, per_output_, started ? clip_ : torch::Tensor())
                  : prop_clip(w, cfg.maxw_quantscale, per_output_));
}

torch::Tensor QuantLayerImpl::codes() const {
  if (!scheme_) throw std::runtime_error("layer " + name_ + " is not quantized (QuantType None)");
  return quantize_codes(weight_.detach(), *scheme_, clip());
}

torch::Tensor QuantLayerImpl::forward_weight() const {
  if (!scheme_) return weight_;
  const torch::Tensor wq = fake_quantized_weights(weight_.detach(), *scheme_, clip());
  return weight_ + (wq - weight_.detach());  // straight-through estimator
}

BitLinearImpl::BitLinearImpl(std::string name, int64_t in, int64_t out, std::optional<SchemeId> scheme,
                             const Config& cfg)
    : QuantLayerImpl(std::move(name), scheme, cfg.WScale == "PerOutput", {out, in}),
      norm_type_(cfg.NormType) {
  if (norm_type_ == "BatchNorm")
    batch_norm_ = register_module("norm", torch::nn::BatchNorm1d(torch::nn::BatchNorm1dOptions(in).affine(false)));
  if (norm_type_ == "LayerNorm")
    layer_norm_ = register_module(
        "norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({in}).elementwise_affine(false)));
}

torch::Tensor BitLinearImpl::forward(const torch::Tensor& input) {
  torch::Tensor x = input;
  if (norm_type_ == "RMS") x = x * torch::rsqrt(x.pow(2).mean(-1, true) + 1e-6f);
  else if (norm_type_ == "Lin") x = x / (x.abs().mean(-1, true) + 1e-6f);
  else if (norm_type_ == "BatchNorm") x = batch_norm_(x);
  else if (norm_type_ == "LayerNorm") x = layer_norm_(x);
  if (scheme_) x = quantize_activations_ste(x);
  return torch::nn::functional::linear(x, forward_weight());
}

BitConv2dImpl::BitConv2dImpl(std::string name, int64_t in, int64_t out, int64_t groups,
                             std::optional<SchemeId> scheme, const Config& cfg)
    : QuantLayerImpl(std::move(name), scheme, cfg.WScale == "PerOutput", {out, in / groups, 3, 3}),
      groups_(groups) {}

torch::Tensor BitConv2dImpl::forward(const torch::Tensor& input) {
  const torch::Tensor x = scheme_ ? quantize_activations_ste(input) : input;
  return torch::conv2d(x, forward_weight(), {}, 1, 0, 1, groups_);
}

}  // namespace bitnetmcu::train
