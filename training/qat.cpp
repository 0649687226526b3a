#include "qat.hpp"

#include <bitnetmcu/level_table.hpp>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>

#ifdef BITNETMCU_HAVE_DNNL_SGEMM
// oneDNN's row-major SGEMM (C API of libdnnl.so.2, which LibTorch itself links): Debian's
// LibTorch sends torch::mm to the reference netlib BLAS, ~10x slower on these small matrices.
extern "C" int dnnl_sgemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
#endif

namespace bitnetmcu::train {
namespace {

#ifdef BITNETMCU_HAVE_DNNL_SGEMM
// op(a) [M,K] * op(b) [K,N] for contiguous row-major float tensors.
torch::Tensor sgemm(const torch::Tensor& a, bool trans_a, const torch::Tensor& b, bool trans_b) {
  const int64_t m = trans_a ? a.size(1) : a.size(0), k = trans_a ? a.size(0) : a.size(1);
  const int64_t n = trans_b ? b.size(0) : b.size(1);
  torch::Tensor c = torch::empty({m, n}, a.options());
  const int status = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, 1.0f, a.data_ptr<float>(), a.size(1),
                                b.data_ptr<float>(), b.size(1), 0.0f, c.data_ptr<float>(), n);
  TORCH_CHECK(status == 0, "dnnl_sgemm failed with status ", status);
  return c;
}

// y = x w_q^T; the gradient of w_q goes to the latent weights w (straight-through estimator),
// so the STE costs no extra tensor operations.
struct DenseSteFunction : torch::autograd::Function<DenseSteFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w,
                               const torch::Tensor& w_q) {
    (void)w;
    const torch::Tensor xc = x.contiguous(), wc = w_q.contiguous();
    ctx->save_for_backward({xc, wc});
    return sgemm(xc, false, wc, true);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor g = grads[0].contiguous();
    const torch::Tensor grad_x = ctx->needs_input_grad(0) ? sgemm(g, false, saved[1], false) : torch::Tensor();
    return {grad_x, sgemm(g, true, saved[0], false), torch::Tensor()};
  }
};
#endif

}  // namespace

torch::Tensor matmul_nt(const torch::Tensor& a, const torch::Tensor& b) {
#ifdef BITNETMCU_HAVE_DNNL_SGEMM
  if (a.device().is_cpu() && a.scalar_type() == torch::kFloat32 && b.scalar_type() == torch::kFloat32)
    return sgemm(a.contiguous(), false, b.contiguous(), true);
#endif
  return torch::mm(a, b.t());
}

namespace {
// x [N,in] times the quantized weights w_q [out,in] transposed, gradient to the latent w.
torch::Tensor dense_ste(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& w_q) {
#ifdef BITNETMCU_HAVE_DNNL_SGEMM
  if (x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && w.scalar_type() == torch::kFloat32)
    return DenseSteFunction::apply(x, w, w_q);
#endif
  return torch::nn::functional::linear(x, w + (w_q - w.detach()));
}

constexpr float kNormEps = 1e-6f;

// RMS norm then 8-bit activation quantization per row; the backward pass is the RMS norm's
// (the quantizer's straight-through gradient is the identity). One autograd node instead of
// a dozen: the per-step overhead of many small ops dominates at these layer sizes.
struct RmsQuantFunction : torch::autograd::Function<RmsQuantFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x) {
    const torch::Tensor r = torch::rsqrt(x.square().mean(-1, true).add_(kNormEps));
    const torch::Tensor xn = x * r;
    const torch::Tensor scale = 127.0f / xn.abs().amax(-1, true).clamp_min_(1e-5f);
    ctx->save_for_backward({xn, r});
    // |xn * scale| <= 127, so the clamp to [-128, 127] of SPEC §4 never acts.
    return (xn * scale).round_().div_(scale);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& xn = saved[0];
    const torch::Tensor& g = grads[0];
    return {(g - xn * (g * xn).mean(-1, true)).mul_(saved[1])};
  }
};

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

// The engine's quantizer of each scheme as a table (bitnetmcu/level_table.hpp): exact to
// encode()/value() by construction, so no rounding rule is restated here.
const LevelTable& levels_of(SchemeId scheme) {
  static const std::vector<LevelTable> tables = [] {
    std::vector<LevelTable> t;
    for (int i = 0; i < kNumSchemes; ++i) t.push_back(level_table(static_cast<SchemeId>(i)));
    return t;
  }();
  return tables.at(static_cast<size_t>(scheme));
}

// f(table, x) for every element x of v, into a tensor of v's shape and dtype T on v's device
// (a plain loop over float32 on the CPU; other devices go through the CPU).
template <class T, class F>
torch::Tensor map_levels(const torch::Tensor& v, SchemeId scheme, torch::ScalarType out_type, F&& f) {
  const LevelTable& table = levels_of(scheme);
  const torch::Tensor in = v.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  torch::Tensor out = torch::empty(in.sizes(), torch::TensorOptions().dtype(out_type));
  const float* x = in.data_ptr<float>();
  T* y = out.data_ptr<T>();
  for (int64_t i = 0, n = in.numel(); i < n; ++i) y[i] = f(table, x[i]);
  return out.to(v.device());
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
  return map_levels<uint8_t>(v, scheme, torch::kUInt8, [](const LevelTable& t, float x) { return t.code(x); });
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
  return map_levels<float>(v, scheme, torch::kFloat32, [](const LevelTable& t, float x) { return t.level(x); })
      .to(v.scalar_type());
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

namespace {
// Compiled for AVX2 too, chosen at load time where the CPU has it: rounding is one instruction
// there (`vroundps`), a libm call per value in baseline x86-64. (A feature, not "arch=haswell":
// that clone is chosen by CPU model, and an AMD EPYC got the baseline one.)
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define BITNETMCU_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define BITNETMCU_VECTOR_CLONES
#endif

// q = clamp(round(x * s), -128, 127) / s for one row of n floats (of relu(x) when `relu`): the
// tensor expression's four passes over a 6.4 MB CNN activation in one (the same float
// operations in the same order, so the same values; round half to even as torch::round). A
// function of its own, called per row: the clones apply to it, not to a lambda that
// at::parallel_for outlines.
BITNETMCU_VECTOR_CLONES
void quantize_row(const float* __restrict x, float s, float* __restrict q, int64_t n, bool relu) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = relu && x[i] < 0.0f ? 0.0f : x[i];  // NaN stays NaN, as in torch::relu
    float t = std::nearbyint(v * s);
    t = t < -128.0f ? -128.0f : t;
    t = t > 127.0f ? 127.0f : t;
    q[i] = t / s;
  }
}

// Per-row 8-bit quantization of x, or of relu(x): the values of quantize_activations_ste.
torch::Tensor quantize_rows(const torch::Tensor& x_in, bool relu) {
  const torch::Tensor x = x_in.contiguous();
  const torch::Tensor flat = x.flatten(1);
  // max |x| = max(max x, -min x): two reductions, no |x| tensor (aminmax is slower in 1.13);
  // relu(x) >= 0, so its max |.| is max x clamped like the rest
  const torch::Tensor m = relu ? flat.amax(1) : torch::maximum(flat.amax(1), -flat.amin(1));
  const torch::Tensor scale = 127.0f / m.clamp_min(1e-5f);
  if (x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && x.numel() > 0) {
    torch::Tensor q = torch::empty_like(x);
    const float *xp = x.data_ptr<float>(), *sp = scale.data_ptr<float>();
    float* qp = q.data_ptr<float>();
    const int64_t n = flat.size(1);
    at::parallel_for(0, x.size(0), 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) quantize_row(xp + r * n, sp[r], qp + r * n, n, relu);
    });
    return q;
  }
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[0] = x.size(0);
  const torch::Tensor s = scale.reshape(shape);
  return ((relu ? torch::relu(x) : x) * s).round_().clamp_(-128, 127).div_(s);
}

// Per-row 8-bit quantization whose gradient is the identity (straight-through), in one node.
struct ActQuantFunction : torch::autograd::Function<ActQuantFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext*, const torch::Tensor& x) {
    return quantize_rows(x, false);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext*, torch::autograd::tensor_list grads) {
    return {grads[0]};
  }
};

// The same of relu(x): relu's gradient (where x > 0) times the identity. One pass over a CNN
// activation instead of relu's pass and its backward's.
struct ReluActQuantFunction : torch::autograd::Function<ReluActQuantFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x) {
    ctx->save_for_backward({x});
    return quantize_rows(x, true);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    return {torch::threshold_backward(grads[0], ctx->get_saved_variables()[0], 0)};
  }
};

// conv2d(x, w_q) with the weight gradient routed to the latent w (STE). For depthwise layers
// the input gradient is a forward convolution of the padded gradient with the flipped kernel:
// LibTorch 1.13's depthwise input-gradient kernel is ~8x slower than its forward one on CPU.
struct ConvSteFunction : torch::autograd::Function<ConvSteFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w,
                               const torch::Tensor& w_q, int64_t groups) {
    (void)w;
    ctx->save_for_backward({x, w_q});
    ctx->saved_data["groups"] = groups;
    return at::conv2d(x, w_q, {}, kOnes, kZeros, kOnes, groups);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &w_q = saved[1];
    const int64_t groups = ctx->saved_data["groups"].toInt();
    const torch::Tensor g = grads[0].contiguous();
    torch::Tensor grad_x;
    if (ctx->needs_input_grad(0)) {
      if (groups > 1 && groups == x.size(1) && w_q.size(0) == groups) {
        const int64_t k = w_q.size(2) - 1;
        grad_x = at::conv2d(g, w_q.flip({2, 3}), {}, kOnes, std::vector<int64_t>{k, k}, kOnes, groups);
      } else {
        grad_x = std::get<0>(at::convolution_backward(g, x, w_q, c10::nullopt, kOnes, kZeros, kOnes, false, kZeros,
                                                      groups, {true, false, false}));
      }
    }
    const torch::Tensor grad_w = std::get<1>(at::convolution_backward(g, x, w_q, c10::nullopt, kOnes, kZeros, kOnes,
                                                                     false, kZeros, groups, {false, true, false}));
    return {grad_x, grad_w, torch::Tensor(), torch::Tensor()};
  }
  static const std::vector<int64_t> kOnes, kZeros;
};
const std::vector<int64_t> ConvSteFunction::kOnes{1, 1}, ConvSteFunction::kZeros{0, 0};
}  // namespace

torch::Tensor quantize_activations_ste(const torch::Tensor& x) { return ActQuantFunction::apply(x); }
torch::Tensor relu_quantize_activations_ste(const torch::Tensor& x) { return ReluActQuantFunction::apply(x); }

namespace {
// 2x2 max pooling of float CPU planes (stride 2, odd last rows and columns dropped), of relu(x)
// when `relu`. The first maximum of each window in scan order wins; `window` gets its place in
// the window (0 top left, 1 top right, 2 bottom left, 3 bottom right), plus 4 where relu made
// it 0 (its gradient is 0: max(relu(.)) = relu(max(.)) with relu's gradient at the winner).
// Selects, not branches: on ReLU planes the winner is random, and the branchy loop mispredicted
// its way to 4x the time (1.7 against 0.45 ms for the CNN-64 batch's 128x64x12x12 planes, one
// thread).
void max_pool_2x2_planes(const float* x, float* m, uint8_t* window, int64_t planes, int64_t h, int64_t w, bool relu) {
  const int64_t ho = h / 2, wo = w / 2;
  at::parallel_for(0, planes, 16, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p)
      for (int64_t y = 0; y < ho; ++y) {
        const float* top = x + (p * h + 2 * y) * w;
        const float* bottom = top + w;
        float* mo = m + (p * ho + y) * wo;
        uint8_t* wi = window + (p * ho + y) * wo;
        for (int64_t i = 0; i < wo; ++i) {
          const float a = top[2 * i], b = top[2 * i + 1], c = bottom[2 * i], d = bottom[2 * i + 1];
          const int right_top = b > a, right_bottom = d > c;
          const float t = a < b ? b : a, u = c < d ? d : c;
          const int use_bottom = u > t;
          const float v = t < u ? u : t;
          const int zeroed = relu && v <= 0.0f;  // NaN stays, as in torch::relu
          mo[i] = zeroed ? 0.0f : v;
          wi[i] = static_cast<uint8_t>((right_top + use_bottom * (2 + right_bottom - right_top)) | (zeroed << 2));
        }
      }
  });
}

// The gradient of max_pool_2x2_planes: each window's gradient goes to its winner, every other
// input (and a dropped odd row or column) gets zero; one pass writes every input once (0.15 ms
// for the 128x64x12x12 batch, one thread, against 2.2 ms for a select per input).
void max_pool_2x2_planes_backward(const float* g, const uint8_t* window, float* grad, int64_t planes, int64_t h,
                                  int64_t w) {
  const int64_t ho = h / 2, wo = w / 2;
  at::parallel_for(0, planes, 16, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      float* plane = grad + p * h * w;
      for (int64_t y = 0; y < ho; ++y) {
        float* top = plane + 2 * y * w;
        float* bottom = top + w;
        const float* gi = g + (p * ho + y) * wo;
        const uint8_t* wi = window + (p * ho + y) * wo;
        for (int64_t i = 0; i < wo; ++i) {  // masks on the bits: `k == 0 ? v : 0` compiled to branches
          uint32_t v;
          std::memcpy(&v, gi + i, 4);
          const uint32_t k = wi[i];
          const uint32_t out[4] = {v & (0u - (k == 0)), v & (0u - (k == 1)), v & (0u - (k == 2)), v & (0u - (k == 3))};
          std::memcpy(top + 2 * i, out, 8);
          std::memcpy(bottom + 2 * i, out + 2, 8);
        }
        if (w & 1) top[w - 1] = bottom[w - 1] = 0.0f;
      }
      if (h & 1)
        for (int64_t i = 0; i < w; ++i) plane[(h - 1) * w + i] = 0.0f;
    }
  });
}

// Other tensors (float64, CUDA): four strided views compared elementwise, and max_pool2d's
// index tensor (the flat H x W position of each window's first maximum) for its backward.
std::pair<torch::Tensor, torch::Tensor> max_pool_2x2_with_index(const torch::Tensor& x_in) {
  const int64_t h = x_in.size(2), w = x_in.size(3), ho = h / 2, wo = w / 2;
  using torch::indexing::Slice;
  auto quadrant = [&](int64_t dy, int64_t dx) {
    return x_in.index({Slice(), Slice(), Slice(dy, 2 * ho, 2), Slice(dx, 2 * wo, 2)});
  };
  const torch::Tensor a = quadrant(0, 0), b = quadrant(0, 1), cq = quadrant(1, 0), d = quadrant(1, 1);
  const torch::Tensor top_right = b > a, bottom_right = d > cq;
  const torch::Tensor top = torch::maximum(a, b), bottom = torch::maximum(cq, d);
  const torch::Tensor use_bottom = bottom > top;
  const torch::Tensor origin = (torch::arange(ho, torch::kInt64).view({ho, 1}) * (2 * w) +
                                torch::arange(wo, torch::kInt64).view({1, wo}) * 2).to(x_in.device());
  return {torch::maximum(top, bottom), origin + use_bottom * w + torch::where(use_bottom, bottom_right, top_right)};
}

bool pools_planes(const torch::Tensor& x) { return x.device().is_cpu() && x.scalar_type() == torch::kFloat32; }

struct MaxPool2x2Function : torch::autograd::Function<MaxPool2x2Function> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x_in, bool relu) {
    if (pools_planes(x_in)) {
      const torch::Tensor x = x_in.contiguous();
      const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
      torch::Tensor m = torch::empty({n, c, h / 2, w / 2}, x.options());
      torch::Tensor window = torch::empty({n, c, h / 2, w / 2}, x.options().dtype(torch::kUInt8));
      max_pool_2x2_planes(x.data_ptr<float>(), m.data_ptr<float>(), window.data_ptr<uint8_t>(), n * c, h, w, relu);
      ctx->save_for_backward({window});
      ctx->saved_data["input_size"] = x.sizes();
      return m;
    }
    // the autograd graph of relu, and this pooling of its result
    const torch::Tensor x = relu ? torch::relu(x_in) : x_in;
    auto [m, index] = max_pool_2x2_with_index(x);
    ctx->save_for_backward({x, index});
    ctx->saved_data["relu"] = relu;
    return m;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor g = grads[0].contiguous();
    if (saved.size() == 1) {  // the float CPU path: window codes
      const torch::Tensor& window = saved[0];
      torch::Tensor grad = torch::empty(ctx->saved_data["input_size"].toIntVector(), g.options());
      max_pool_2x2_planes_backward(g.data_ptr<float>(), window.data_ptr<uint8_t>(), grad.data_ptr<float>(),
                                   grad.size(0) * grad.size(1), grad.size(2), grad.size(3));
      return {grad, torch::Tensor()};
    }
    const torch::Tensor &x = saved[0], index = saved[1].contiguous();
    const std::vector<int64_t> two{2, 2}, zero{0, 0}, one{1, 1};
    torch::Tensor grad = at::max_pool2d_with_indices_backward(g, x, two, two, zero, one, false, index);
    if (ctx->saved_data["relu"].toBool()) grad = torch::threshold_backward(grad, x, 0);
    return {grad, torch::Tensor()};
  }
};
}  // namespace

torch::Tensor max_pool_2x2(const torch::Tensor& x) { return MaxPool2x2Function::apply(x, false); }
torch::Tensor relu_max_pool_2x2(const torch::Tensor& x) { return MaxPool2x2Function::apply(x, true); }

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

torch::Tensor QuantLayerImpl::quantized_weight() const {
  return fake_quantized_weights(weight_.detach(), *scheme_, clip());
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
  if (!scheme_) return torch::nn::functional::linear(normalize(input), weight_);
  const torch::Tensor x = norm_type_ == "RMS" ? RmsQuantFunction::apply(input) : quantize_activations_ste(normalize(input));
  return dense_ste(x, weight_, quantized_weight());
}

torch::Tensor BitLinearImpl::normalize(const torch::Tensor& x) {
  if (norm_type_ == "RMS") return x * torch::rsqrt(x.square().mean(-1, true) + kNormEps);
  if (norm_type_ == "Lin") return x / (x.abs().mean(-1, true) + kNormEps);
  if (norm_type_ == "BatchNorm") return batch_norm_(x);
  if (norm_type_ == "LayerNorm") return layer_norm_(x);
  return x;
}

BitConv2dImpl::BitConv2dImpl(std::string name, int64_t in, int64_t out, int64_t groups,
                             std::optional<SchemeId> scheme, const Config& cfg)
    : QuantLayerImpl(std::move(name), scheme, cfg.WScale == "PerOutput", {out, in / groups, 3, 3}),
      groups_(groups) {}

torch::Tensor BitConv2dImpl::forward(const torch::Tensor& input) {
  if (!scheme_) {
    const std::vector<int64_t> stride{1, 1}, padding{0, 0}, dilation{1, 1};
    return torch::conv2d(input, weight_, torch::Tensor(), stride, padding, dilation, groups_);
  }
  return ConvSteFunction::apply(quantize_activations_ste(input), weight_, quantized_weight(), groups_);
}

torch::Tensor BitConv2dImpl::forward_relu(const torch::Tensor& pre) {
  if (!scheme_) return forward(torch::relu(pre));
  return ConvSteFunction::apply(relu_quantize_activations_ste(pre), weight_, quantized_weight(), groups_);
}

}  // namespace bitnetmcu::train
