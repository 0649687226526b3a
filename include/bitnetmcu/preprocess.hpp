// Input preprocessing (SPEC §2), the one definition used by the trainer, the exporter, the
// firmware test-image generator and the Python module. Freestanding: a device with a camera
// can run it too.
//
//   28x28 uint8 -> 16x16 by antialiased bilinear resize (PIL's resize(BILINEAR): a triangle
//   filter widened by the scale factor) = R * (img / 255) * R^T with R = resize_weights(28, 16),
//   then (x - mean) / std, then per image s = 127 / max|x| (guard 1e-5),
//   q = clamp(round_half_even(x * s), -128, 127).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "schemes.hpp"

namespace bitnetmcu {

constexpr float kMnistMean = 0.1307f;
constexpr float kMnistStd = 0.3081f;

// [out_size][in_size] resize weights: row o holds the normalized triangle-filter taps of output
// pixel o (PIL ImagingResample's precompute_coeffs for the bilinear filter, in double).
inline void resize_weights(uint32_t in_size, uint32_t out_size, float* m) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filterscale = scale > 1.0 ? scale : 1.0;
  const double support = filterscale;  // the bilinear filter's support is 1
  for (uint32_t o = 0; o < out_size; ++o) {
    const double center = (static_cast<double>(o) + 0.5) * scale;
    const double lo_d = center - support + 0.5, hi_d = center + support + 0.5;
    const uint32_t lo = lo_d > 0 ? static_cast<uint32_t>(lo_d) : 0;
    const uint32_t hi = hi_d < in_size ? static_cast<uint32_t>(hi_d) : in_size;
    double w[64] = {};  // taps of this output (in_size / out_size * 2 + 1 <= 64)
    double total = 0;
    for (uint32_t i = lo; i < hi && i - lo < 64; ++i) {
      double d = (static_cast<double>(i) - center + 0.5) / filterscale;
      d = d < 0 ? -d : d;
      w[i - lo] = d < 1.0 ? 1.0 - d : 0.0;
      total += w[i - lo];
    }
    for (uint32_t i = 0; i < in_size; ++i)
      m[o * in_size + i] = (i >= lo && i < hi && i - lo < 64) ? static_cast<float>(w[i - lo] / total) : 0.0f;
  }
}

// Index of the first NaN or infinite value of x, or n when all are finite. quantize_input has
// no int8 for them (NaN would become 0, inf would zero every other value): callers reject them.
inline uint32_t first_non_finite(const float* x, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i)
    if (!(x[i] - x[i] == 0.0f)) return i;  // inf - inf and NaN - NaN are NaN
  return n;
}

// Per-image symmetric int8 quantization of the network input (SPEC §2), float32 arithmetic
// exactly as the tensor version would do it: s = 127 / max(max|x|, 1e-5), q = round(x * s).
// x must be finite (first_non_finite).
inline void quantize_input(const float* x, uint32_t n, int8_t* q) {
  float m = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const float a = x[i] < 0 ? -x[i] : x[i];
    if (a > m) m = a;
  }
  if (m < 1e-5f) m = 1e-5f;
  const float s = 127.0f / m;
  for (uint32_t i = 0; i < n; ++i)
    q[i] = static_cast<int8_t>(detail::clamp(detail::round_half_even(x[i] * s), -128, 127));
}

// Input quantization of feature vectors (config input_quantization: global / per_feature), so
// that a device feeds its raw sensor values. offset and scale come from the training set's
// range (the trainer: offset = (min + max) / 2, scale = 127 / ((max - min) / 2), per feature or
// over all features), stored in the checkpoint and in the exported header (kInputOffset,
// kInputScale). One float32 subtract and multiply per value, as written here, then
//   q[i] = clamp(round_half_even((x[i] - offset[k]) * scale[k]), -128, 127),
// k = i when n_params == n (per feature), k = 0 when n_params == 1 (global). NaN gives 0.
inline void quantize_features(const float* x, uint32_t n, const float* offset, const float* scale, uint32_t n_params,
                              int8_t* q) {
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t k = n_params == 1 ? 0 : i;
    const float centered = x[i] - offset[k];
    const float scaled = centered * scale[k];
    q[i] = static_cast<int8_t>(detail::clamp(detail::round_half_even(scaled), -128, 127));
  }
}

}  // namespace bitnetmcu
