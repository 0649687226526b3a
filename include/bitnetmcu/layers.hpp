// One step of a model, callable with sizes known only at run time. Both the typed
// compile-time Model (model.hpp) and the run-time LayerDesc list call these.
#pragma once
#include <stdint.h>

#include "kernels/activation.hpp"
#include "kernels/arith.hpp"
#include "kernels/conv.hpp"
#include "kernels/dense.hpp"
#include "kernels/dense_planes.hpp"
#include "schemes.hpp"

namespace bitnetmcu {

// acc[o] += m * v[o], multiplication-free: one pass over the outputs per set bit of |m|
// (|m| <= 128: at most 8 passes, 3 for a typical MNIST background).
template <class R>
inline void add_multiple(int32_t* acc, const R* v, uint32_t n, int32_t m) {
  uint32_t bits = static_cast<uint32_t>(m < 0 ? -m : m);
  for (uint32_t shift = 0; bits; ++shift, bits >>= 1) {
    if (!(bits & 1u)) continue;
    if (m < 0)
      for (uint32_t o = 0; o < n; ++o) acc[o] -= shl(v[o], shift);
    else
      for (uint32_t o = 0; o < n; ++o) acc[o] += shl(v[o], shift);
  }
}

// Dense layer on int8 inputs. With `rowsum` (sum_i decode(W[o][i]), stored by the exporter as
// int16 where the sums fit, else int32), the layer subtracts the image background x[0] from
// every input so that background pixels are skipped like zeros, and adds x[0] * rowsum[o]
// back: acc is unchanged, exactly.
template <class S, class R = int32_t>
inline void dense_layer(const typename S::word_t* w, const R* rowsum, uint32_t n_in, uint32_t n_out,
                        const int8_t* x, int32_t* acc) {
  const int32_t offset = rowsum ? x[0] : 0;
  dense<S>(w, n_in, n_out, x, offset, acc);
  if (offset) add_multiple(acc, rowsum, n_out, offset);
}
template <class S>
inline void dense_layer(const typename S::word_t* w, decltype(nullptr), uint32_t n_in, uint32_t n_out,
                        const int8_t* x, int32_t* acc) {
  dense<S>(w, n_in, n_out, x, 0, acc);
}

// The same layer on plane_columns weights (schemes with plane traits, kernels/dense_planes.hpp).
template <class S, uint32_t Out, class R = int32_t>
inline void dense_layer_planes(const PlaneLayer& layer, const R* rowsum, const int8_t* x, int32_t* acc) {
  const int32_t offset = rowsum ? x[0] : 0;
  dense_planes<S::plane_scale, S::plane_bias, (Out > 64)>(layer, x, offset, acc);
  if (offset) add_multiple(acc, rowsum, Out, offset);
}
template <class S, uint32_t Out>
inline void dense_layer_planes(const PlaneLayer& layer, decltype(nullptr), const int8_t* x, int32_t* acc) {
  dense_planes<S::plane_scale, S::plane_bias, (Out > 64)>(layer, x, 0, acc);
}

// Conv weights of the CNN block: codes of scheme S, one byte each, [3][channels][3][3]
// (conv1, dwconv2, dwconv3).
template <class S>
inline void cnn_layer(const uint8_t* w, uint32_t side, uint32_t channels, uint32_t shift, const int8_t* image,
                      int32_t* work, int32_t* out) {
  const uint32_t per_conv = channels * 9;
  cnn_channel_block<S>(image, side, channels, w, w + per_conv, w + 2 * per_conv, shift, work, out);
}

// Whether a worst-case |acc| fits the int32 accumulators. The one bound both the typed model
// (static_assert) and the model-file parser (at load time) check.
constexpr bool fits_accumulator(int64_t worst_abs_acc) { return worst_abs_acc < 0x7FFFFFFFll; }

// Worst-case |acc| of a dense layer (int8 inputs, or inputs minus an int8 offset).
constexpr int64_t dense_acc_bound(uint32_t n_in, int32_t max_abs_weight, bool offset_input) {
  return static_cast<int64_t>(n_in) * (offset_input ? 255 : 128) * max_abs_weight;
}

// Worst-case |sum| in any stage of the CNN block, given its activation shift and max |weight|.
constexpr int64_t cnn_acc_bound(uint32_t shift, int32_t max_abs_weight) {
  int64_t in = 128, worst = 0;
  for (int stage = 0; stage < 3; ++stage) {
    const int64_t acc = 9 * in * max_abs_weight;
    if (acc > worst) worst = acc;
    in = acc >> shift;
  }
  return worst;
}

}  // namespace bitnetmcu
