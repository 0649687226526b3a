// 3x3 valid convolution, 2x2 max-pool and the channel-sequential depthwise CNN block
// (SPEC §3, §6). Conv weights are codes of a scheme S, one byte each, [channel][3][3]; for 8bit
// (the SPEC's CNN) the byte is the int8 weight itself. 8bit and the other multi-level schemes
// multiply (mul_i32: the hardware `mul` where the target has one, shift-and-add otherwise);
// FP130 conv weights are a shift and a sign, so a CNN with FP130 convs needs no multiplier.
#pragma once
#include <stdint.h>

#include "../schemes.hpp"
#include "arith.hpp"

namespace bitnetmcu {

// row[x] +-= p[x] << e over [row, end). Out of line so that on RV32E all its values stay in
// registers (inlined into the conv, GCC spills e to the stack: 11 instead of 8 per tap).
template <class T, bool Negative>
__attribute__((noinline)) void add_shifted_row(int32_t* row, int32_t* end, const T* p, uint32_t e) {
  do {
    const int32_t v = shl(static_cast<int32_t>(*p++), e);
    *row = Negative ? *row - v : *row + v;
  } while (++row != end);
}

// out[y][x] = max(0, sum_{ky,kx} w[ky][kx] * in[y+ky][x+kx]) >> shift, for a valid 3x3
// convolution of an h x w plane. `out` (h-2) x (w-2) may alias `in`: output (y, x) is written
// at y*(w-2)+x, at or before every input position still to be read.
template <class S, class T>
inline void conv3x3_relu_shift(const T* in, uint32_t h, uint32_t w, const uint8_t* k, uint32_t shift,
                               int32_t* out) {
  const uint32_t oh = h - 2, ow = w - 2;
  if constexpr (S::multiples == Multiples::PowersOfTwo) {
    // Shift-only weights: tap-major over one output row at a time. Each tap's shift and sign
    // stay in registers for a whole row, so a tap costs a load, a shift, an add and a store.
    // The row is written over input row y, which no later output row reads.
    int32_t row[62];  // ow <= 62 (Side <= 64)
    for (uint32_t y = 0; y < oh; ++y, in += w) {
      for (uint32_t x = 0; x < ow; ++x) row[x] = 0;
      const T* tap_row = in;
      const uint8_t* kk = k;
      for (uint32_t ky = 0; ky < 3; ++ky, tap_row += w) {
        for (uint32_t kx = 0; kx < 3; ++kx, ++kk) {
          if (*kk & 8u)
            add_shifted_row<T, true>(row, row + ow, tap_row + kx, *kk & 7u);
          else
            add_shifted_row<T, false>(row, row + ow, tap_row + kx, *kk & 7u);
        }
      }
      for (uint32_t x = 0; x < ow; ++x) *out++ = row[x] < 0 ? 0 : (row[x] >> shift);
    }
  } else {
    int32_t kw[9];  // decoded once per plane
    for (uint32_t i = 0; i < 9; ++i) kw[i] = S::decode(k[i]);
    for (uint32_t y = 0; y < oh; ++y, in += w) {  // pointers only: no index multiply on RV32EC
      for (uint32_t x = 0; x < ow; ++x) {
        const T* p = in + x;
        const int32_t* kk = kw;
        int32_t s = 0;
        for (uint32_t ky = 0; ky < 3; ++ky, p += w, kk += 3)
          for (uint32_t kx = 0; kx < 3; ++kx) s += mul_i32(static_cast<int32_t>(p[kx]), kk[kx]);
        *out++ = s < 0 ? 0 : (s >> shift);
      }
    }
  }
}

// 2x2 max-pool, stride 2, in place allowed (output (y,x) lands before any unread input).
inline void maxpool2x2(const int32_t* in, uint32_t h, uint32_t w, int32_t* out) {
  const uint32_t oh = h / 2, ow = w / 2;
  for (uint32_t y = 0; y < oh; ++y, in += 2 * w) {
    const int32_t* p = in;
    for (uint32_t x = 0; x < ow; ++x, p += 2) {
      int32_t m = p[0];
      if (p[1] > m) m = p[1];
      if (p[w] > m) m = p[w];
      if (p[w + 1] > m) m = p[w + 1];
      *out++ = m;
    }
  }
}

// The CNN front end of CNNMNIST, one channel at a time in one (n-2)^2 int32 plane:
// conv1 (1->C) -> ReLU>>shift -> dwconv2 -> ReLU>>shift -> pool -> dwconv3 -> ReLU>>shift -> pool.
// image: n x n int8 (n = 16); out: C * ((n-4)/2 - 2)/2 squared values, channel-major
// (flatten order of a [C][2][2] tensor). plane: (n-2)*(n-2) int32 scratch.
// The plain composition of the steps above: the reference twin of the fast FP130 block below.
template <class S>
inline void cnn_channel_block_ref(const int8_t* image, uint32_t n, uint32_t channels, const uint8_t* w1,
                                  const uint8_t* w2, const uint8_t* w3, uint32_t shift, int32_t* plane,
                                  int32_t* out) {
  for (uint32_t c = 0; c < channels; ++c, w1 += 9, w2 += 9, w3 += 9) {
    uint32_t s = n;
    conv3x3_relu_shift<S>(image, s, s, w1, shift, plane);
    s -= 2;
    conv3x3_relu_shift<S>(plane, s, s, w2, shift, plane);
    s -= 2;
    maxpool2x2(plane, s, s, plane);
    s /= 2;
    conv3x3_relu_shift<S>(plane, s, s, w3, shift, plane);
    s -= 2;
    maxpool2x2(plane, s, s, plane);
    s /= 2;
    const int32_t* p = plane;
    for (uint32_t y = 0; y < s; ++y)
      for (uint32_t x = 0; x < s; ++x) *out++ = *p++;
  }
}

// ---- the fast FP130 block ---------------------------------------------------------------------
namespace detail {

// One kernel row over one output row: acc[x] (+)= +-(p[x] << e0) +-(p[x+1] << e1) +-(p[x+2] << e2).
// Signs are template arguments (8 variants per input type and mode), so a tap costs a load, a
// shift and an add; all values stay in RV32E's registers. Init writes instead of adding.
template <class T, bool Init, bool N0, bool N1, bool N2>
__attribute__((noinline)) void fp130_tap_row(int32_t* acc, int32_t* end, const T* p, uint32_t e0, uint32_t e1,
                                             uint32_t e2) {
  do {
    const int32_t v0 = shl(static_cast<int32_t>(p[0]), e0), v1 = shl(static_cast<int32_t>(p[1]), e1),
                  v2 = shl(static_cast<int32_t>(p[2]), e2);
    int32_t s = N1 == N0 ? v0 + v1 : v0 - v1;  // +-s is the row's sum
    s = N2 == N0 ? s + v2 : s - v2;
    if constexpr (Init)
      *acc = N0 ? -s : s;
    else
      *acc = N0 ? *acc - s : *acc + s;
    ++p;
  } while (++acc != end);
}

// Direct calls (a switch, not a table of function pointers): the firmware's static stack bound
// (mcu/ch32v003/cmake/stack_bound.cmake) needs every callee known.
template <class T, bool Init>
inline void fp130_kernel_row(int32_t* acc, uint32_t n, const T* p, const uint8_t* k) {
  int32_t* const end = acc + n;
  const uint32_t e0 = k[0] & 7u, e1 = k[1] & 7u, e2 = k[2] & 7u;
  switch (((k[0] >> 3) & 1u) | ((k[1] >> 2) & 2u) | ((k[2] >> 1) & 4u)) {
    case 0: return fp130_tap_row<T, Init, false, false, false>(acc, end, p, e0, e1, e2);
    case 1: return fp130_tap_row<T, Init, true, false, false>(acc, end, p, e0, e1, e2);
    case 2: return fp130_tap_row<T, Init, false, true, false>(acc, end, p, e0, e1, e2);
    case 3: return fp130_tap_row<T, Init, true, true, false>(acc, end, p, e0, e1, e2);
    case 4: return fp130_tap_row<T, Init, false, false, true>(acc, end, p, e0, e1, e2);
    case 5: return fp130_tap_row<T, Init, true, false, true>(acc, end, p, e0, e1, e2);
    case 6: return fp130_tap_row<T, Init, false, true, true>(acc, end, p, e0, e1, e2);
    default: return fp130_tap_row<T, Init, true, true, true>(acc, end, p, e0, e1, e2);
  }
}

// Raw sums (no ReLU) of a valid 3x3 FP130 convolution of an h x w plane. `out` may alias `in`:
// output row y is built at y*(w-2), over input rows no later output row reads, and its first
// kernel row is written left to right behind the reads of input row y.
template <class T>
inline void fp130_conv3x3(const T* in, uint32_t h, uint32_t w, const uint8_t* k, int32_t* out) {
  const uint32_t ow = w - 2;
  for (uint32_t y = 2; y < h; ++y, in += w, out += ow) {
    fp130_kernel_row<T, true>(out, ow, in, k);
    fp130_kernel_row<T, false>(out, ow, in + w, k + 3);
    fp130_kernel_row<T, false>(out, ow, in + 2 * w, k + 6);
  }
}

inline int32_t relu_shift(int32_t v, uint32_t shift) { return v < 0 ? 0 : (v >> shift); }

// 2x2 max-pool of raw sums, then ReLU>>shift: the same as pooling the activations, because
// ReLU>>shift never decreases (max(f(a), f(b)) = f(max(a, b))), on a quarter of the values.
// Returns the end of the output. Pointer loops: with an index GCC computes that end with a
// multiply (a __mulsi3 call on RV32EC).
inline int32_t* maxpool2x2_relu_shift(const int32_t* in, uint32_t h, uint32_t w, uint32_t shift, int32_t* out) {
  const uint32_t ow = w / 2;
  for (uint32_t y = h / 2; y != 0; --y, in += 2 * w) {
    const int32_t* p = in;
    for (int32_t* const row_end = out + ow; out != row_end; ++out, p += 2) {
      int32_t m = p[0];
      if (p[1] > m) m = p[1];
      if (p[w] > m) m = p[w];
      if (p[w + 1] > m) m = p[w + 1];
      *out = relu_shift(m, shift);
    }
  }
  return out;
}

}  // namespace detail

// The CNN block. FP130 convs: shift-and-add rows (detail::fp130_conv3x3), each pool fused with
// the ReLU>>shift before it; bit-exact with cnn_channel_block_ref. Other schemes: the reference.
template <class S>
inline void cnn_channel_block(const int8_t* image, uint32_t n, uint32_t channels, const uint8_t* w1,
                              const uint8_t* w2, const uint8_t* w3, uint32_t shift, int32_t* plane,
                              int32_t* out) {
  if constexpr (S::multiples == Multiples::PowersOfTwo) {
    const uint32_t s1 = n - 2, s2 = s1 - 2, s3 = s2 / 2, s4 = s3 - 2;
    // the end of conv1's s1 x s1 output, without a multiply (RV32EC has none)
    const int32_t* const end = plane + mul_shift_add(static_cast<int32_t>(s1), static_cast<int32_t>(s1));
    for (uint32_t c = 0; c < channels; ++c, w1 += 9, w2 += 9, w3 += 9) {
      detail::fp130_conv3x3(image, n, n, w1, plane);
      for (int32_t* p = plane; p != end; ++p) *p = detail::relu_shift(*p, shift);
      detail::fp130_conv3x3(plane, s1, s1, w2, plane);
      detail::maxpool2x2_relu_shift(plane, s2, s2, shift, plane);
      detail::fp130_conv3x3(plane, s3, s3, w3, plane);
      out = detail::maxpool2x2_relu_shift(plane, s4, s4, shift, out);
    }
  } else {
    cnn_channel_block_ref<S>(image, n, channels, w1, w2, w3, shift, plane, out);
  }
}

constexpr uint32_t cnn_output_side(uint32_t n) { return ((n - 4) / 2 - 2) / 2; }

}  // namespace bitnetmcu
