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
  if constexpr (S::id == SchemeId::FP130) {
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
template <class S>
inline void cnn_channel_block(const int8_t* image, uint32_t n, uint32_t channels, const uint8_t* w1,
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

constexpr uint32_t cnn_output_side(uint32_t n) { return ((n - 4) / 2 - 2) / 2; }

}  // namespace bitnetmcu
